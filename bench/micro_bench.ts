/** `deno task bench:micro`: the hot paths — message parsing, schema validation, chunk encoding. */
import { parseChatRequest } from "../lib/openai/chat_request.ts";
import { ChatChunkStream, type ChatStreamEvent } from "../lib/openai/chat_stream.ts";
import { planGeneration } from "../lib/generation/plan.ts";
import { findModel } from "../lib/generation/registry.ts";
import { parsePromptFlags } from "../lib/openai/prompt_flags.ts";

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

Deno.bench("schema validation: plan an edit with 2 images", { group: "validate" }, () => {
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
  "schema validation: text-to-image with size mapping and n=2",
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

Deno.bench("prompt flags: parse a flagged Chinese prompt", { group: "parse" }, () => {
  parsePromptFlags("海边的灯塔，油画 --ar 16:9 --seed 42 --steps 30 --neg “模糊，低质量”");
});

const events: ChatStreamEvent[] = [
  { kind: "role" },
  ...Array.from({ length: 10 }, () => ({ kind: "keepalive" }) as const),
  { kind: "content", text: "![seed 42](https://example.com/a.png)" },
  { kind: "finish" },
  { kind: "usage", usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } },
];

Deno.bench(
  "chunk encoding: a 14-event answer through ChatChunkStream",
  { group: "encode" },
  async () => {
    const stream = ReadableStream.from(events).pipeThrough(
      new ChatChunkStream({ id: "chatcmpl-x", created: 0, model: "Qwen/Qwen-Image" }, true),
    );
    for await (const _ of stream) { /* drain */ }
  },
);
