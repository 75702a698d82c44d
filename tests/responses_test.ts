/**
 * `POST /v1/responses`, driven by the official SDK (`responses.create`, `responses.stream`) and by
 * raw requests for what SDKs do not show.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { decodeBase64 } from "@std/encoding/base64";
import OpenAI from "openai";
import { PNG_DATA_URI, post, startFakeUpstream, startServer, TEST_KEY } from "./_helpers.ts";

Deno.test("Responses API with the official SDK: create, stream, image results, multi-turn edit", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
  await t.step("a string input answers markdown images in output_text", async () => {
    const response = await client.responses.create({
      model: "Qwen/Qwen-Image",
      input: "a red fox --ar 16:9 --seed 7",
    });
    assertEquals([response.object, response.status], ["response", "completed"]);
    assertMatch(
      response.output_text,
      /^!\[seed 7\]\(http:\/\/127\.0\.0\.1:\d+\/demo\/images\/1664x928\/7\.png\)$/,
    );
    assertEquals(fake.received.at(-1)!.body.prompt, "a red fox");
  });
  await t.step("the image_generation tool returns each image as base64", async () => {
    const response = await client.responses.create({
      model: "gpt-image-1",
      input: [{ role: "user", content: [{ type: "input_text", text: "a cat" }] }],
      tools: [{ type: "image_generation" }],
    });
    const calls = response.output.filter((o) => o.type === "image_generation_call");
    assertEquals(calls.length, 1);
    const result = calls[0].type === "image_generation_call" ? calls[0].result! : "";
    assertEquals(decodeBase64(result)[1], 0x50);
    assertMatch(response.output_text, /^!\[/);
  });
  await t.step(
    "input_image parts edit; an earlier image_generation_call is the image to edit next",
    async () => {
      const first = await client.responses.create({
        model: "Qwen/Qwen-Image-Edit-2509",
        input: [{
          role: "user",
          content: [
            { type: "input_text", text: "make it blue" },
            { type: "input_image", image_url: PNG_DATA_URI, detail: "auto" },
          ],
        }],
      });
      assertEquals(fake.received.at(-1)!.body.image, PNG_DATA_URI);
      assertMatch(first.output_text, /^!\[/);
      await client.responses.create({
        model: "Qwen/Qwen-Image-Edit-2509",
        input: [
          { role: "user", content: "make a cat" },
          {
            type: "image_generation_call",
            id: "ig_1",
            status: "completed",
            result: PNG_DATA_URI.split(",")[1],
          },
          { role: "user", content: "now add a hat" },
        ],
      });
      assertEquals(fake.received.at(-1)!.body.image, PNG_DATA_URI);
      assertEquals(fake.received.at(-1)!.body.prompt, "now add a hat");
    },
  );
  await t.step("responses.stream: the event sequence, and the final response", async () => {
    const stream = client.responses.stream({ model: "Qwen/Qwen-Image", input: "a boat" });
    const types: string[] = [];
    let text = "";
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") text += event.delta;
    }
    const final = await stream.finalResponse();
    assertEquals(types, [
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    assertEquals(final.output_text, text);
    assertMatch(text, /^!\[/);
  });
});

Deno.test("Responses API: failures, keep-alives and previous_response_id", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, KEEPALIVE_MS: "100" });
  const res = await post(`${server.url}/v1/responses`, {
    model: "Qwen/Qwen-Image",
    input: "x",
    previous_response_id: "resp_1",
  });
  assertEquals(res.status, 400);
  assertEquals((await res.json()).error.param, "previous_response_id");
  // A stream that fails after it opened: an error event, then response.failed.
  fake.queue.push({
    status: 503,
    body: '{"code":50505,"message":"Model service overloaded.","data":null}',
    delayMs: 300,
  });
  const failed = await post(`${server.url}/v1/responses`, {
    model: "Qwen/Qwen-Image",
    input: "x",
    stream: true,
  });
  const text = await failed.text();
  assertStringIncludes(text, ": keepalive\n\n");
  assertStringIncludes(text, "event: error\ndata: ");
  assertMatch(text, /event: response\.failed\ndata: .*"status":"failed".*overloaded/);
  const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
  fake.queue.push({ status: 401, body: '"Invalid token"' });
  try {
    await client.responses.create({ model: "Qwen/Qwen-Image", input: "x" });
    throw new Error("should fail");
  } catch (err) {
    assert(err instanceof OpenAI.AuthenticationError, String(err));
  }
});

Deno.test("Responses API: a field at fault is named in input's terms, never as messages", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const cases: [unknown, string, string][] = [
    ["", "input", "A prompt is required"],
    [
      [{ type: "reasoning", summary: [] }, {
        role: "user",
        content: [{ type: "input_file", file_data: "x" }, { type: "input_text", text: " " }],
      }],
      "input[1].content",
      "A prompt is required",
    ],
    [
      [{ type: "reasoning", summary: [] }, {
        role: "user",
        content: [{ type: "input_text", text: "hi" }, { type: "input_file", file_data: "x" }, {
          type: "input_image",
          image_url: "ftp://host/a.png",
        }],
      }],
      "input[1].content[2].image_url",
      "input[1].content[2].image_url must be",
    ],
    [[{ role: "assistant", content: "hello" }], "input", "input must contain a user message"],
  ];
  for (const [input, param, message] of cases) {
    const res = await post(`${server.url}/v1/responses`, { model: "Qwen/Qwen-Image", input });
    const { error } = await res.json();
    assertEquals([res.status, error.param], [400, param], JSON.stringify(error));
    assertStringIncludes(error.message, message);
  }
  // Found while planning: the edit model finds no image in the item that holds the prompt.
  const edit = await post(`${server.url}/v1/responses`, {
    model: "Qwen/Qwen-Image-Edit-2509",
    input: [{ type: "reasoning", summary: [] }, { role: "user", content: "make it night" }],
  });
  assertEquals([edit.status, (await edit.json()).error.param], [400, "input[1].content"]);
});
