import { assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { PNG_DATA_URI, post, startFakeUpstream, startServer, TEST_KEY } from "./_helpers.ts";

const user = (content: unknown) => [{ role: "user", content }];

Deno.test("chat completion: prompt, images and parameters reach SiliconFlow as it expects", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const chat = `${server.url}/v1/chat/completions`;

  await t.step("string content, extra OpenAI fields ignored, key passed through", async () => {
    const res = await post(chat, {
      model: "Qwen/Qwen-Image",
      messages: [{ role: "system", content: "be nice" }, ...user("a red fox")],
      temperature: 0.2,
      max_tokens: 50,
      seed: 7,
    });
    assertEquals(res.status, 200);
    const body = await res.json();
    assertEquals(body.object, "chat.completion");
    assertEquals(body.choices[0].message.role, "assistant");
    assertMatch(
      body.choices[0].message.content,
      /^!\[seed 7\]\(http:\/\/127\.0\.0\.1:\d+\/demo\/images\/1328x1328\/7\.png\)$/,
    );
    assertEquals(res.headers.get("x-siliconcloud-trace-id")?.startsWith("demo-"), true);
    const sent = fake.received.at(-1)!;
    assertEquals(sent.authorization, `Bearer ${TEST_KEY}`);
    assertEquals(sent.body, {
      model: "Qwen/Qwen-Image",
      prompt: "a red fox",
      seed: 7,
      image_size: "1328x1328",
    });
  });

  await t.step(
    "last user message wins; text parts join with newlines; both image_url forms",
    async () => {
      const res = await post(chat, {
        model: "Qwen/Qwen-Image-Edit-2509",
        messages: [
          ...user("old prompt"),
          { role: "assistant", content: "ok" },
          ...user([
            { type: "text", text: "put them" },
            { type: "image_url", image_url: { url: PNG_DATA_URI, detail: "high" } },
            { type: "text", text: "side by side" },
            { type: "image_url", image_url: "https://example.com/b.png" },
          ]),
        ],
      });
      assertEquals(res.status, 200, await res.clone().text());
      assertEquals(fake.received.at(-1)!.body, {
        model: "Qwen/Qwen-Image-Edit-2509",
        prompt: "put them\nside by side",
        image: PNG_DATA_URI,
        image2: "https://example.com/b.png",
      });
    },
  );

  await t.step("several images come back one markdown image per line", async () => {
    const res = await post(chat, {
      model: "Kwai-Kolors/Kolors",
      messages: user("cats"),
      batch_size: 3,
    });
    const content: string = (await res.json()).choices[0].message.content;
    assertEquals(content.split("\n").length, 3);
    for (const line of content.split("\n")) assertMatch(line, /^!\[image \d\]\(http[^)]+\.png\)$/);
  });

  await t.step("n on a model without batches makes concurrent seeded calls", async () => {
    const before = fake.received.length;
    const res = await post(chat, {
      model: "Qwen/Qwen-Image",
      messages: user("owl"),
      n: 2,
      seed: 100,
    });
    const content: string = (await res.json()).choices[0].message.content;
    assertEquals(content.split("\n").map((l) => l.slice(0, 12)), ["![seed 100](", "![seed 101]("]);
    assertEquals(fake.received.slice(before).map((r) => r.body.seed).sort(), [100, 101]);
  });

  await t.step("models answer by alias too", async () => {
    const res = await post(chat, { model: "dall-e-3", messages: user("owl"), size: "1792x1024" });
    assertEquals(res.status, 200);
    assertEquals((await res.json()).model, "dall-e-3");
    assertEquals(fake.received.at(-1)!.body.model, "Qwen/Qwen-Image");
    assertEquals(
      fake.received.at(-1)!.body.image_size,
      "1664x928",
      "size maps as in the Images API",
    );
  });
});

Deno.test("chat completion: bad input gets an OpenAI error naming the field", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const chat = `${server.url}/v1/chat/completions`;
  const cases: [string, unknown, number, string | null, Record<string, string>?][] = [
    ["no key", { model: "Qwen/Qwen-Image", messages: user("x") }, 401, null],
    ["not JSON", "{nope", 400, null],
    ["array body", "[]", 400, "body"],
    ["no model", { messages: user("x") }, 400, "model"],
    ["unknown model", { model: "gpt-4o", messages: user("x") }, 404, "model"],
    ["messages not array", { model: "Qwen/Qwen-Image", messages: "hi" }, 400, "messages"],
    [
      "no user message",
      { model: "Qwen/Qwen-Image", messages: [{ role: "system", content: "x" }] },
      400,
      "messages",
    ],
    [
      "empty prompt",
      { model: "Qwen/Qwen-Image", messages: user("  ") },
      400,
      "messages[0].content",
    ],
    [
      "content wrong type",
      { model: "Qwen/Qwen-Image", messages: user(42) },
      400,
      "messages[0].content",
    ],
    [
      "bad image url",
      {
        model: "Qwen/Qwen-Image-Edit",
        messages: user([{ type: "image_url", image_url: { url: "ftp://x" } }, {
          type: "text",
          text: "x",
        }]),
      },
      400,
      "messages[0].content[0].image_url",
    ],
    [
      "seed out of range",
      { model: "Qwen/Qwen-Image", messages: user("x"), seed: 1e11 },
      400,
      "seed",
    ],
    [
      "steps wrong type",
      { model: "Qwen/Qwen-Image", messages: user("x"), num_inference_steps: "many" },
      400,
      "num_inference_steps",
    ],
    [
      "edit without image",
      { model: "Qwen/Qwen-Image-Edit", messages: user("x") },
      400,
      "messages[0].content",
    ],
    [
      "stream not boolean",
      { model: "Qwen/Qwen-Image", messages: user("x"), stream: "yes" },
      400,
      "stream",
    ],
  ];
  for (const [name, body, status, param] of cases) {
    await t.step(name, async () => {
      const res = await post(chat, body, { key: name === "no key" ? null : undefined });
      const json = await res.json();
      assertEquals(res.status, status, JSON.stringify(json));
      assertEquals(Object.keys(json.error).sort(), ["code", "message", "param", "type"]);
      assertEquals(typeof json.error.message, "string");
      assertEquals(json.error.param, param);
      assertEquals(res.headers.get("access-control-allow-origin"), "*");
    });
  }
  await t.step("the message says what is wrong with the value", async () => {
    const said: [unknown, string][] = [
      [
        {
          messages: user([
            { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } },
            { type: "text", text: "x" },
          ]),
        },
        "is a data URI, but its base64 is not a png, jpeg, webp or gif image",
      ],
      [{ messages: user("x"), stream: "yes" }, "stream must be true or false"],
      [{ messages: user("x"), image_size: "99999x99999" }, "each side 64 to 4096"],
    ];
    for (const [body, words] of said) {
      const res = await post(chat, { model: "Qwen/Qwen-Image", ...body as object });
      assertEquals(res.status, 400);
      assertStringIncludes((await res.json()).error.message, words);
    }
  });
  assertEquals(fake.received.length, 0, "nothing invalid went upstream");
});

Deno.test("models, CORS, request ids and unknown routes", async (t) => {
  await using server = startServer({});
  await t.step("GET /v1/models and /models list models and aliases", async () => {
    for (const path of ["/v1/models", "/models"]) {
      const body = await (await fetch(server.url + path)).json();
      assertEquals(body.object, "list");
      const ids = body.data.map((m: { id: string }) => m.id);
      for (
        const id of [
          "Kwai-Kolors/Kolors",
          "Qwen/Qwen-Image",
          "Qwen/Qwen-Image-Edit",
          "Qwen/Qwen-Image-Edit-2509",
          "dall-e-3",
        ]
      ) {
        assertEquals(ids.includes(id), true, id);
      }
      for (const m of body.data) {
        assertEquals(Object.keys(m).sort(), ["created", "id", "object", "owned_by"]);
      }
    }
  });
  await t.step("GET /v1/models/{id} with a slash in the id, and 404", async () => {
    const one = await (await fetch(`${server.url}/v1/models/Qwen/Qwen-Image-Edit-2509`)).json();
    const { parameters, input_images, sizes, ...model } = one;
    assertEquals(model, {
      id: "Qwen/Qwen-Image-Edit-2509",
      object: "model",
      created: one.created,
      owned_by: "Qwen",
    });
    // The playground's form: parameters as JSON Schema, image count, sizes (clients ignore them).
    assertEquals([parameters.type, parameters.properties.cfg.maximum], ["object", 20]);
    assertEquals([input_images, sizes], [{ min: 1, max: 3 }, []]);
    const missing = await fetch(`${server.url}/v1/models/nope/nothing`);
    assertEquals(missing.status, 404);
    assertEquals((await missing.json()).error.code, "model_not_found");
  });
  await t.step("OPTIONS preflight", async () => {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: { "access-control-request-headers": "authorization, content-type, x-stainless-os" },
    });
    await res.body?.cancel();
    assertEquals(res.status, 204);
    assertEquals(res.headers.get("access-control-allow-origin"), "*");
    assertStringIncludes(res.headers.get("access-control-allow-headers")!, "x-stainless-os");
    assertStringIncludes(res.headers.get("access-control-allow-methods")!, "POST");
  });
  await t.step("request ids: the client's sane one is kept, else a new one", async () => {
    const kept = await fetch(`${server.url}/v1/models`, { headers: { "x-request-id": "abc-123" } });
    await kept.body?.cancel();
    assertEquals(kept.headers.get("x-request-id"), "abc-123");
    const replaced = await fetch(`${server.url}/v1/models`, {
      headers: { "x-request-id": "bad id <script>" },
    });
    await replaced.body?.cancel();
    assertMatch(replaced.headers.get("x-request-id")!, /^[0-9a-f-]{36}$/);
  });
  await t.step("unknown path is a 404, wrong method a 405, both OpenAI-shaped", async () => {
    const a = await fetch(`${server.url}/v1/nothing`);
    assertEquals([a.status, (await a.json()).error.type], [404, "not_found_error"]);
    const b = await fetch(`${server.url}/v1/chat/completions`);
    assertEquals([b.status, typeof (await b.json()).error.message], [405, "string"]);
  });
});

Deno.test("large input images reach SiliconFlow intact (streamed request body)", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  // A PNG and a GIF header, then filler: input images must be images.
  const uri = (head: string) => `data:image/png;base64,${head}${"iVBO".repeat(600_000)}`;
  const [a, b] = [uri("iVBORw0KGgoA"), uri("R0lGODlh")];
  const res = await post(`${server.url}/v1/chat/completions`, {
    model: "Qwen/Qwen-Image-Edit-2509",
    messages: [{
      role: "user",
      content: [
        { type: "text", text: "merge" },
        { type: "image_url", image_url: { url: a } },
        { type: "image_url", image_url: { url: b } },
      ],
    }],
  });
  assertEquals(res.status, 200, await res.clone().text());
  await res.body?.cancel();
  const sent = fake.received.at(-1)!.body;
  assertEquals([sent.image === a, sent.image2 === b, sent.prompt], [true, true, "merge"]);
});
