/**
 * `deno task bench:micro`: the hot paths of a request, each beside the way it was done before
 * (marked `baseline`), so that `deno bench` prints how many times faster (or slower) it is now.
 */
import { encodeBase64 } from "@std/encoding/base64";
import { parseChatRequest } from "../lib/openai/chat_request.ts";
import { ChatChunkEncoder, type ChatStreamEvent, toChatChunk } from "../lib/openai/chat_stream.ts";
import { planGeneration } from "../lib/generation/plan.ts";
import { findModel } from "../lib/generation/registry.ts";
import { parsePromptFlags } from "../lib/openai/prompt_flags.ts";
import { decodeUtf8 } from "../lib/server/body.ts";
import { jsonResponse } from "../lib/server/response.ts";
import { LocalMediaStore } from "../lib/store/local.ts";

const PNG = "data:image/png;base64,iVBORw0KGgoA" + "A".repeat(1012);
const body = {
  model: "Qwen/Qwen-Image-Edit-2509",
  stream: true,
  temperature: 0.7,
  messages: [
    { role: "system", content: "You are an image editor." },
    { role: "user", content: "earlier" },
    { role: "assistant", content: "![seed 1](https://example.com/1.png)" },
    {
      role: "user",
      content: [
        { type: "text", text: "Put the cat on the sofa" },
        { type: "image_url", image_url: { url: PNG } },
        { type: "image_url", image_url: { url: PNG } },
      ],
    },
  ],
  seed: 42,
  num_inference_steps: 30,
  cfg: 4,
};
const json = JSON.stringify(body);
const edit = findModel("Qwen/Qwen-Image-Edit-2509")!;
const qwen = findModel("Qwen/Qwen-Image")!;

Deno.bench("message parsing: JSON text to ChatRequest", { group: "parse" }, () => {
  parseChatRequest(JSON.parse(json));
});

Deno.bench("schema validation (zod): plan an edit with 2 images", { group: "validate" }, () => {
  const chat = parseChatRequest(body);
  planGeneration({
    model: edit,
    prompt: chat.prompt,
    images: chat.images,
    fields: chat.fields,
    imagesParam: "messages[3].content",
    promptParam: "messages[3].content",
  });
});

Deno.bench(
  "schema validation (zod): text-to-image with size mapping and n=2",
  { group: "validate" },
  () => {
    planGeneration({
      model: qwen,
      prompt: "a cat",
      images: [],
      fields: { size: "1792x1024", n: 2, seed: 7, negative_prompt: "blurry" },
      imagesParam: "messages[0].content",
      promptParam: "messages[0].content",
    });
  },
);

Deno.bench("prompt flags: parse a flagged Chinese prompt", { group: "flags" }, () => {
  parsePromptFlags("海边的灯塔，油画 --ar 16:9 --seed 42 --steps 30 --neg “模糊，低质量”");
});
Deno.bench("prompt flags: a prompt without flags", { group: "flags" }, () => {
  parsePromptFlags("a lighthouse by the sea, oil painting, warm evening light");
});

// ---- the answer's headers (CORS and the request id) ----
const ANSWER = JSON.stringify({ images: [{ url: "https://example.com/a.png" }], seed: 1 });
const CORS = {
  "access-control-allow-origin": "*",
  "access-control-expose-headers": "x-request-id, x-siliconcloud-trace-id, retry-after",
};
Deno.bench("answer headers: a second Response to add them", {
  group: "headers",
  baseline: true,
}, () => {
  const h = new Headers({ "x-ignored-params": "quality" });
  h.set("content-type", "application/json; charset=utf-8");
  const first = new Response(ANSWER, { status: 200, headers: h });
  const headers = new Headers(first.headers);
  for (const [k, v] of Object.entries(CORS)) headers.set(k, v);
  headers.set("x-request-id", "r1");
  new Response(first.body, { status: first.status, headers });
});
Deno.bench("answer headers: set on the one Response", { group: "headers" }, () => {
  const response = jsonResponse({ ok: true }, 200, { "x-ignored-params": "quality" });
  for (const name in CORS) response.headers.set(name, CORS[name as keyof typeof CORS]);
  response.headers.set("x-request-id", "r1");
});

// ---- streamed answers ----
const events: ChatStreamEvent[] = [
  { kind: "role" },
  ...Array.from({ length: 10 }, () => ({ kind: "keepalive" }) as const),
  { kind: "content", text: "![seed 42](https://example.com/a.png)" },
  { kind: "finish" },
  { kind: "usage", usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } },
];
const meta = { id: "chatcmpl-x", created: 0, model: "Qwen/Qwen-Image" };
const utf8 = new TextEncoder();
/** The encoder as it was: a TransformStream per answer, one chunk per event. */
function transformEncoder(): TransformStream<ChatStreamEvent, Uint8Array> {
  return new TransformStream({
    transform(event, controller) {
      if (event.kind === "usage") {
        return controller.enqueue(
          utf8.encode(
            `data: ${JSON.stringify(toChatChunk(meta, { usage: event.usage }, true))}\n\n`,
          ),
        );
      }
      const delta = event.kind === "role"
        ? { role: "assistant" as const, content: "" }
        : event.kind === "content"
        ? { content: event.text }
        : event.kind === "finish"
        ? {}
        : { content: "" };
      const finish = event.kind === "finish" ? "stop" as const : undefined;
      controller.enqueue(
        utf8.encode(`data: ${JSON.stringify(toChatChunk(meta, { delta, finish }, true))}\n\n`),
      );
    },
    flush(controller) {
      controller.enqueue(utf8.encode("data: [DONE]\n\n"));
    },
  });
}
Deno.bench("stream encoding: a 14-event answer through a TransformStream", {
  group: "encode",
  baseline: true,
}, async () => {
  const stream = ReadableStream.from(events).pipeThrough(transformEncoder());
  for await (const _ of stream) { /* drain */ }
});
Deno.bench("stream encoding: the same with ChatChunkEncoder, one chunk", {
  group: "encode",
}, async () => {
  const encoder = new ChatChunkEncoder(meta, true);
  const frames = events.map((e) => encoder.encode(e) ?? "").join("") + (encoder.end() ?? "");
  const stream = ReadableStream.from([utf8.encode(frames)]);
  for await (const _ of stream) { /* drain */ }
});

// ---- large bodies ----
const MB = new Uint8Array(1 << 20);
for (let i = 0; i < MB.length; i += 65536) crypto.getRandomValues(MB.subarray(i, i + 65536));
const asciiBody = utf8.encode(JSON.stringify({ image: encodeBase64(MB) }));
const strict = new TextDecoder("utf-8", { fatal: true });
Deno.bench("JSON body of 1.4 MB: strict TextDecoder", {
  group: "decode",
  baseline: true,
}, () => {
  strict.decode(asciiBody);
});
Deno.bench("JSON body of 1.4 MB: decodeUtf8 (lenient, strict only on U+FFFD)", {
  group: "decode",
}, () => {
  decodeUtf8(asciiBody);
});
Deno.bench("base64 of a 1 MB image: std encodeBase64", { group: "base64", baseline: true }, () => {
  encodeBase64(MB);
});
Deno.bench("base64 of a 1 MB image: Uint8Array.prototype.toBase64", { group: "base64" }, () => {
  MB.toBase64();
});
// The local image store: a small image (the size of the demo's 64×64 PNG) written once under its
// final name, against the temporary file and rename it used to take, and against a stream of it.
const storeRoot = Deno.makeTempDirSync({ prefix: "micro-store-" });
const store = new LocalMediaStore({
  root: storeRoot,
  ttlMs: 86_400_000,
  maxBytes: 2 ** 40,
  logger: () => {},
  sweepEveryMs: 3_600_000,
});
const smallImage = new Uint8Array(1200);
let written = 0;
// What durability costs: the store writes a locked partial file, syncs it, renames it and syncs the
// folder (so a crash never leaves a short file under a served name); the baseline does not sync.
Deno.bench("store a small image: temporary file, then rename (no sync)", {
  group: "store",
  baseline: true,
}, async () => {
  const path = `${storeRoot}/before-${written++}`;
  await Deno.writeFile(`${path}.tmp`, smallImage);
  await Deno.rename(`${path}.tmp`, path);
});
Deno.bench(
  "store a small image: put(bytes): partial file, locked, synced, renamed",
  { group: "store" },
  async () => {
    await store.put(smallImage, "image/png");
  },
);
Deno.bench("store a small image: putStream of a one-chunk stream", { group: "store" }, async () => {
  await store.putStream(ReadableStream.from([smallImage]), "image/png");
});
// Serving a small stored image: the file streamed (as before), against read in one call.
const served = await store.put(smallImage, "image/png");
Deno.bench("serve a small image: open, stat, stream the file", {
  group: "serve",
  baseline: true,
}, async () => {
  const file = await Deno.open(`${storeRoot}/${served}`);
  await file.stat();
  await new Response(file.readable).arrayBuffer();
});
Deno.bench(
  "serve a small image: store.get (read whole in one call)",
  { group: "serve" },
  async () => {
    await new Response((await store.get(served))!.body).arrayBuffer();
  },
);
globalThis.addEventListener("unload", () => {
  store.close();
  Deno.removeSync(storeRoot, { recursive: true });
});
