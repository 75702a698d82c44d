/**
 * Property-based fuzzing of every JSON endpoint with fast-check: random and mutated bodies, wrong
 * types at every field, deep nesting, huge strings, odd unicode and invalid UTF-8. The server
 * never answers 500 and never throws; every 4xx is OpenAI-shaped; afterwards it still works.
 */
import { assert, assertEquals } from "@std/assert";
import fc from "fast-check";
import { loadConfig } from "../lib/config.ts";
import { createHandler, type Handler } from "../lib/handler.ts";
import { MODELS } from "../lib/generation/registry.ts";
import { PNG_DATA_URI, post, startFakeUpstream, startServer, TEST_KEY } from "./_helpers.ts";

const anyJson = fc.jsonValue({ maxDepth: 4 });
const oddString = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary" }),
  fc.constantFrom(
    "",
    " ",
    "\u0000",
    "\ud800",
    "🦊🎨",
    "一只猫 --ar 16:9",
    "--seed",
    "a --n 99",
    "x".repeat(100_000),
  ),
);
/** A field that is usually valid, sometimes anything, sometimes missing. */
const field = <T>(valid: fc.Arbitrary<T>) =>
  fc.oneof(
    { weight: 4, arbitrary: valid as fc.Arbitrary<unknown> },
    { weight: 1, arbitrary: anyJson },
    { weight: 1, arbitrary: oddString },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
// Video models in chat wait for their job; they are fuzzed through /v1/videos, which does not.
const modelId = fc.constantFrom(
  ...MODELS.filter((m) => !m.video).map((m) => m.id),
  "dall-e-3",
  "gpt-image-1",
  "nope/nope",
  "",
);
const imageUrl = fc.constantFrom(
  PNG_DATA_URI,
  "https://example.com/a.png",
  "ftp://x",
  "data:text/plain;base64,AA==",
);
const part = fc.oneof(
  fc.record({ type: fc.constant("text"), text: field(oddString) }),
  fc.record({
    type: fc.constant("image_url"),
    image_url: field(fc.oneof(imageUrl, fc.record({ url: field(imageUrl) }))),
  }),
  fc.record({ type: field(fc.string()) }),
);
const message = fc.record({
  role: field(fc.constantFrom("user", "assistant", "system", "tool")),
  content: field(fc.oneof(oddString, fc.array(part, { maxLength: 5 }), fc.constant(null))),
});
const junk = fc.oneof(anyJson, oddString);
/** Mostly-valid parameters: each present or not, with valid values. */
const validParams = {
  seed: fc.option(fc.integer({ min: 0, max: 9_999_999_999 }), { nil: undefined }),
  num_inference_steps: fc.option(fc.integer({ min: 1, max: 100 }), { nil: undefined }),
  negative_prompt: fc.option(fc.string(), { nil: undefined }),
  size: fc.option(fc.constantFrom("1024x1024", "1792x1024", "auto", "256x256"), { nil: undefined }),
  n: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
};
/** Every field any endpoint reads, for mutations. */
const FIELDS = [
  "model",
  "messages",
  "prompt",
  "stream",
  "stream_options",
  "response_format",
  "images",
  "mask",
  "seed",
  "num_inference_steps",
  "cfg",
  "guidance_scale",
  "batch_size",
  "negative_prompt",
  "image_size",
  "size",
  "n",
  "aspect_ratio",
  "image_delivery",
  "progress",
  "output_format",
  "prompt_enhancement",
];
/** A valid body, then 0–2 fields replaced by junk of any type (or removed). */
const mutated = (valid: fc.Arbitrary<Record<string, unknown>>) =>
  fc.tuple(
    valid,
    fc.array(fc.tuple(fc.constantFrom(...FIELDS), fc.option(junk, { nil: undefined })), {
      maxLength: 2,
    }),
  )
    .map(([body, mutations]) => {
      const out: Record<string, unknown> = { ...body };
      for (const [key, value] of mutations) out[key] = value;
      return out;
    });
const textModel = fc.constantFrom(
  "Qwen/Qwen-Image",
  "Kwai-Kolors/Kolors",
  "dall-e-3",
  "Tongyi-MAI/Z-Image-Turbo",
);
const validMessage = fc.oneof(
  fc.string({ minLength: 1 }).map((text) => ({ role: "user", content: `${text} cat` })),
  fc.record({
    role: fc.constant("user"),
    content: fc.array(
      fc.oneof(
        fc.string().map((text) => ({ type: "text", text: `${text} x` })),
        imageUrl.map((url) => ({ type: "image_url", image_url: { url } })),
      ),
      { minLength: 1, maxLength: 4 },
    ),
  }),
);
const chatBody = fc.oneof(
  mutated(fc.record({
    model: fc.oneof(textModel, modelId),
    messages: fc.array(fc.oneof(message, validMessage), { minLength: 0, maxLength: 3 }).chain((
      rest,
    ) => validMessage.map((last) => [...rest, last])),
    stream: fc.boolean(),
    stream_options: fc.option(fc.record({ include_usage: fc.boolean() }), { nil: undefined }),
    temperature: fc.double(),
    ...validParams,
  })),
  fc.record({
    model: field(modelId),
    messages: field(fc.array(message, { maxLength: 4 })),
    stream: field(fc.boolean()),
  }),
);
const generationsBody = mutated(fc.record({
  model: fc.oneof(textModel, modelId),
  prompt: fc.oneof(fc.string({ minLength: 1 }), oddString),
  response_format: fc.constantFrom("url", "b64_json"),
  quality: fc.string(),
  ...validParams,
}));
const videosBody = mutated(fc.record({
  ...validParams,
  model: fc.constantFrom(...MODELS.map((m) => m.id), "sora-2", "sora-2-pro", "nope", ""),
  prompt: fc.oneof(fc.string({ minLength: 1 }), oddString),
  size: fc.constantFrom("1280x720", "720x1280", "1024x1792", "big", "0x0"),
  seconds: fc.constantFrom("4", "8", "12", 5, "x"),
  input_reference: fc.oneof(imageUrl, fc.record({ image_url: imageUrl })),
}));
const editsBody = mutated(fc.record({
  model: fc.constantFrom("Qwen/Qwen-Image-Edit", "Qwen/Qwen-Image-Edit-2509", "gpt-image-1"),
  prompt: fc.string({ minLength: 1 }),
  images: fc.array(fc.record({ image_url: imageUrl }), { minLength: 1, maxLength: 3 }),
  seed: validParams.seed,
}));

/** Serialises a body: usually JSON, sometimes mangled. */
const encoded = (body: fc.Arbitrary<unknown>) =>
  fc.oneof(
    {
      weight: 8,
      arbitrary: body.map((b) => new TextEncoder().encode(JSON.stringify(b) ?? "null")),
    },
    { weight: 1, arbitrary: anyJson.map((b) => new TextEncoder().encode(JSON.stringify(b))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) }, // mostly invalid UTF-8
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "[".repeat(50_000),
        `${'{"a":'.repeat(20_000)}1${"}".repeat(20_000)}`,
        '{"model":"Qwen/Qwen-Image","messages":[{"role":"user","content":"x"}]',
        "",
        "null",
      ).map((s) => new TextEncoder().encode(s)),
    },
  );

async function check(
  handler: Handler,
  path: string,
  bytes: Uint8Array<ArrayBuffer>,
): Promise<void> {
  let res: Response;
  try {
    res = await handler(
      new Request(`http://127.0.0.1${path}`, {
        method: "POST",
        body: bytes,
        headers: { authorization: `Bearer ${TEST_KEY}`, "content-type": "application/json" },
      }),
    );
  } catch (err) {
    throw new Error(`the handler threw: ${err}`);
  }
  assert(res.status !== 500, `500 for ${new TextDecoder().decode(bytes.slice(0, 300))}`);
  const text = await res.text();
  if (res.status >= 400) {
    const body = JSON.parse(text);
    assertEquals(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
    assertEquals(typeof body.error.message, "string");
    assertEquals(typeof body.error.type, "string");
    assertEquals(text.includes(TEST_KEY), false);
  } else if (res.headers.get("content-type")?.startsWith("text/event-stream")) {
    // Chat frames are "data: …"; image stream frames name their event; ":" frames are comments.
    for (const frame of text.split("\n\n").filter(Boolean)) {
      if (frame.startsWith(":")) continue;
      const data = frame.replace(/^event: [\w.]+\n/, "");
      assert(data.startsWith("data: "), frame);
      if (data !== "data: [DONE]") JSON.parse(data.slice(6));
    }
  } else {
    JSON.parse(text);
  }
}

Deno.test("fuzz: JSON endpoints never answer 500 and always answer in OpenAI's shape", async (t) => {
  await using fake = startFakeUpstream();
  const config = loadConfig((n) =>
    ({
      SILICONFLOW_BASE_URL: fake.baseUrl,
      KEEPALIVE_MS: "1000",
      KV_PATH: ":memory:",
    } as Record<string, string>)[n]
  );
  const done = new AbortController();
  const unhandled: unknown[] = [];
  const handler = createHandler({
    config,
    shutdownSignal: done.signal,
    fetch: (input, init) => fetch(input, init),
    logger: (r) => {
      if (r.msg === "unhandled error") unhandled.push(r);
    },
  });
  const endpoints: [string, fc.Arbitrary<unknown>, number][] = [
    ["/v1/chat/completions", chatBody, 2000],
    ["/v1/images/generations", generationsBody, 1000],
    ["/v1/images/edits", editsBody, 500],
    ["/v1/videos", videosBody, 500],
  ];
  for (const [path, body, numRuns] of endpoints) {
    await t.step(`${path}: ${numRuns} cases`, async () => {
      await fc.assert(
        fc.asyncProperty(
          encoded(body),
          (bytes) => check(handler, path, bytes as Uint8Array<ArrayBuffer>),
        ),
        { numRuns },
      );
    });
  }
  assertEquals(unhandled, []);
  assert(fake.received.length > 100, `only ${fake.received.length} fuzzed requests were valid`);
  await t.step("afterwards it still serves normal requests", async () => {
    const res = await handler(
      new Request("http://127.0.0.1/v1/chat/completions", {
        method: "POST",
        headers: { authorization: `Bearer ${TEST_KEY}` },
        body: JSON.stringify({
          model: "Qwen/Qwen-Image",
          messages: [{ role: "user", content: "ok" }],
        }),
      }),
    );
    assertEquals(res.status, 200);
    await res.body?.cancel();
  });
  done.abort();
});

Deno.test("fuzz over real HTTP: a sample through Deno.serve", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  await fc.assert(
    fc.asyncProperty(encoded(chatBody), async (bytes) => {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${TEST_KEY}` },
        body: bytes as Uint8Array<ArrayBuffer>,
      });
      assert(res.status !== 500);
      const text = await res.text();
      if (res.status >= 400) assertEquals(typeof JSON.parse(text).error.message, "string");
    }),
    { numRuns: 300 },
  );
  const ok = await post(`${server.url}/v1/chat/completions`, {
    model: "Qwen/Qwen-Image",
    messages: [{ role: "user", content: "ok" }],
  });
  assertEquals(ok.status, 200);
  await ok.body?.cancel();
});
