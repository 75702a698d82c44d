/**
 * Opt-in prompt rewriting through a SiliconFlow chat model (the stand-in answers chat completions):
 * asked per request or per access key, for generations and edits, returned on every route, its
 * tokens counted in usage, and the original prompt used, and said, when it fails.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import OpenAI, { toFile } from "openai";
import { decodeBase64 } from "@std/encoding/base64";
import {
  makeManagedKey,
  PNG_DATA_URI,
  post,
  startFakeUpstream,
  startServer,
  TEST_KEY,
} from "./_helpers.ts";

const REWRITER = "Qwen/Qwen3-8B";
const EXTENDED = "a lighthouse, rich detail, soft natural light, balanced composition";

/** The fake's calls of one kind, in order. */
const calls = (
  fake: { received: { path: string; body: Record<string, unknown> }[] },
  end: string,
) => fake.received.filter((r) => r.path.endsWith(end)).map((r) => r.body);

Deno.test("prompt_extend on the Images API: rewritten first, returned, counted", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    PROMPT_REWRITE_MODEL: REWRITER,
  });
  const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1` });
  const image = await client.images.generate({
    model: "Qwen/Qwen-Image",
    prompt: "a lighthouse",
    // @ts-expect-error: not an OpenAI field; the SDK sends it as it is.
    prompt_extend: true,
  });
  assertEquals(image.data?.[0].revised_prompt, EXTENDED);
  assert((image.usage?.input_tokens ?? 0) > 0 && (image.usage?.output_tokens ?? 0) > 0);
  const [chat] = calls(fake, "/chat/completions");
  assertEquals(chat.model, REWRITER);
  const messages = chat.messages as { role: string; content: string }[];
  assertMatch(messages[0].content, /image generation model/);
  assertEquals(messages[1], { role: "user", content: "a lighthouse" });
  assertEquals(calls(fake, "/images/generations").at(-1)!.prompt, EXTENDED);

  // Edits get an edit instruction, not a new scene (multipart, as the SDK sends it).
  const png = decodeBase64(PNG_DATA_URI.split(",")[1]);
  const edited = await client.images.edit({
    model: "Qwen/Qwen-Image-Edit",
    prompt: "make it night",
    image: await toFile(png, "a.png", { type: "image/png" }),
    // @ts-expect-error: not an OpenAI field.
    prompt_extend: "true",
  });
  assertMatch(edited.data?.[0].revised_prompt ?? "", /^make it night, rich detail/);
  const editCall = calls(fake, "/chat/completions").at(-1)!;
  assertMatch((editCall.messages as { content: string }[])[0].content, /image editing model/);

  // Asked with a value that is neither true nor false: a 400 naming it.
  const wrong = await post(`${server.url}/v1/images/generations`, {
    model: "Qwen/Qwen-Image",
    prompt: "a",
    prompt_extend: "maybe",
  });
  assertEquals([wrong.status, (await wrong.json()).error.param], [400, "prompt_extend"]);
  // Not asked: no chat call at all.
  const before = calls(fake, "/chat/completions").length;
  const plain = await post(`${server.url}/v1/images/generations`, {
    prompt: "a",
    model: "dall-e-3",
  });
  assertEquals((await plain.json()).data[0].revised_prompt, undefined);
  assertEquals(calls(fake, "/chat/completions").length, before);
});

Deno.test("prompt rewriting in chat (--extend) and the Responses API", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    PROMPT_REWRITE_MODEL: REWRITER,
  });
  const res = await post(`${server.url}/v1/chat/completions`, {
    model: "Qwen/Qwen-Image",
    messages: [{ role: "user", content: "a lighthouse --extend --ar 16:9" }],
  });
  const body = await res.json();
  assertEquals(res.status, 200, JSON.stringify(body));
  assertMatch(body.choices[0].message.content, new RegExp(`\\n> Prompt extended: ${EXTENDED}$`));
  assert(body.usage.total_tokens > 0);
  const sent = calls(fake, "/images/generations").at(-1)!;
  assertEquals([sent.prompt, sent.image_size], [EXTENDED, "1664x928"]);

  const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1` });
  const response = await client.responses.create({
    model: "gpt-image-2",
    input: "a lighthouse",
    tools: [{ type: "image_generation" }],
    // @ts-expect-error: not an OpenAI field.
    prompt_extend: true,
  });
  const call = response.output.find((o) => o.type === "image_generation_call") as {
    revised_prompt?: string;
  };
  assertEquals(call.revised_prompt, EXTENDED);
  assert((response.usage?.output_tokens ?? 0) > 0);
});

Deno.test("a rewrite that fails: the original prompt is used, and the answer says so", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    PROMPT_REWRITE_MODEL: REWRITER,
  });
  // The next upstream call (the chat call) is refused as overloaded.
  fake.queue.push({
    status: 503,
    body: JSON.stringify({ code: 50505, message: "Model service overloaded.", data: null }),
  });
  const res = await post(`${server.url}/v1/images/generations`, {
    model: "Qwen/Qwen-Image",
    prompt: "a lighthouse",
    prompt_extend: true,
  });
  const body = await res.json();
  assertEquals(res.status, 200, JSON.stringify(body));
  assertEquals(body.data[0].revised_prompt, undefined);
  assertEquals(body.prompt_rewrite.status, "failed");
  assertMatch(body.prompt_rewrite.message, /overloaded.*the original was used/);
  assertEquals(calls(fake, "/images/generations").at(-1)!.prompt, "a lighthouse");
  // In chat, a line under the image.
  fake.queue.push({ status: 500, body: "oops" });
  const chat = await (await post(`${server.url}/v1/chat/completions`, {
    model: "Qwen/Qwen-Image",
    messages: [{ role: "user", content: "a lighthouse" }],
    prompt_extend: true,
  })).json();
  assertMatch(
    chat.choices[0].message.content,
    /\n> The prompt was not extended \(.*\); the original was used\.$/,
  );
});

Deno.test("without PROMPT_REWRITE_MODEL the ask is named; an access key can default it on", async () => {
  await using fake = startFakeUpstream();
  await using off = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const res = await post(`${off.url}/v1/images/generations`, {
    model: "Qwen/Qwen-Image",
    prompt: "a",
    prompt_extend: true,
  });
  assertEquals([res.status, res.headers.get("x-ignored-params")], [200, "prompt_extend"]);
  await res.body?.cancel();
  assertEquals(calls(fake, "/chat/completions").length, 0);

  const ADMIN = "admin-secret-rewrite-0123";
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: "sk-owner-2222222222222222222222",
    ADMIN_API_KEY: ADMIN,
    KV_PATH: ":memory:",
    PROMPT_REWRITE_MODEL: REWRITER,
  });
  const { key, prompt_extend } = await makeManagedKey(server.url, ADMIN, {
    name: "writer",
    prompt_extend: true,
  });
  assertEquals(prompt_extend, true);
  const ask = (extra: Record<string, unknown>) =>
    post(`${server.url}/v1/images/generations`, {
      model: "Qwen/Qwen-Image",
      prompt: "a lighthouse",
      ...extra,
    }, { key }).then((r) => r.json());
  assertEquals((await ask({})).data[0].revised_prompt, EXTENDED);
  assertEquals((await ask({ prompt_extend: false })).data[0].revised_prompt, undefined);
});
