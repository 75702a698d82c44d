/** The Vercel AI SDK against the server: its default provider (Responses API), chat, and images. */
import { assertEquals, assertMatch } from "@std/assert";
import { createOpenAI } from "@ai-sdk/openai";
import { generateImage, generateText, streamText } from "ai";
import { startFakeUpstream, startServer, TEST_KEY } from "./_helpers.ts";

Deno.test("Vercel AI SDK: openai(…) (Responses), openai.chat(…), streamText and openai.image(…)", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const openai = createOpenAI({ baseURL: `${server.url}/v1`, apiKey: TEST_KEY });
  await t.step("openai(model) calls /v1/responses", async () => {
    const { text } = await generateText({
      model: openai("Qwen/Qwen-Image"),
      prompt: "a cat --seed 3",
    });
    assertMatch(text, /^!\[seed 3\]\(http/);
  });
  await t.step("openai.chat(model) calls /v1/chat/completions", async () => {
    const { text } = await generateText({ model: openai.chat("Qwen/Qwen-Image"), prompt: "a cat" });
    assertMatch(text, /^!\[/);
  });
  await t.step("streamText over the Responses API", async () => {
    const result = streamText({ model: openai("Qwen/Qwen-Image"), prompt: "a dog" });
    let text = "";
    for await (const delta of result.textStream) text += delta;
    assertMatch(text, /^!\[/);
  });
  await t.step("openai.image(gpt-image-1) reads b64_json", async () => {
    const { image } = await generateImage({ model: openai.image("gpt-image-1"), prompt: "a cat" });
    assertEquals(image.uint8Array[1], 0x50);
  });
});
