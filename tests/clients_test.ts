/**
 * What real OpenAI clients expect: OpenAI's defaults when a field is left out, fields a model does
 * not take dropped rather than refused, streamed images, and stream failures every UI can show.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { decodeBase64 } from "@std/encoding/base64";
import OpenAI, { toFile } from "openai";
import {
  PNG_DATA_URI,
  post,
  readSse,
  startFakeUpstream,
  startRawUpstream,
  startServer,
  TEST_KEY,
} from "./_helpers.ts";

const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "a cat" }],
  ...extra,
});

Deno.test("fields a model does not take are dropped and named; values out of range stay a 400", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  await t.step("batch_size on Qwen-Image becomes n", async () => {
    const res = await post(
      `${server.url}/v1/chat/completions`,
      chat("Qwen/Qwen-Image", { batch_size: 2 }),
    );
    const body = await res.json();
    assertEquals(res.status, 200, JSON.stringify(body));
    assertEquals(
      body.choices[0].message.content.split("\n").filter((l: string) => l.startsWith("![")).length,
      2,
    );
    assertEquals(res.headers.get("x-ignored-params"), null);
    assertEquals(fake.received.slice(-2).map((r) => "batch_size" in r.body), [false, false]);
  });
  await t.step(
    "num_inference_steps on FLUX.2-pro: header and a note under the images",
    async () => {
      const res = await post(
        `${server.url}/v1/chat/completions`,
        chat("black-forest-labs/FLUX.2-pro", { num_inference_steps: 30, negative_prompt: "blur" }),
      );
      const body = await res.json();
      assertEquals(res.status, 200, JSON.stringify(body));
      assertEquals(res.headers.get("x-ignored-params"), "num_inference_steps, negative_prompt");
      assertMatch(
        body.choices[0].message.content,
        /\n> Ignored num_inference_steps, negative_prompt: /,
      );
      assertEquals("num_inference_steps" in fake.received.at(-1)!.body, false);
    },
  );
  await t.step("OpenAI's image fields never fail a request, and are named", async () => {
    const res = await post(`${server.url}/v1/images/generations`, {
      model: "Qwen/Qwen-Image",
      prompt: "a cat",
      quality: "high",
      style: "vivid",
      background: "transparent",
      moderation: "low",
      output_compression: 80,
      input_fidelity: "high",
      user: { id: 7 },
      output_format: "webp",
    });
    assertEquals(res.status, 200, await res.clone().text());
    assertEquals(
      res.headers.get("x-ignored-params"),
      "output_format, background, style, moderation, output_compression, input_fidelity",
    );
    await res.body?.cancel();
    // What asks for nothing is not named.
    const quiet = await post(`${server.url}/v1/images/generations`, {
      model: "Qwen/Qwen-Image",
      prompt: "a cat",
      background: "auto",
      moderation: "auto",
      partial_images: 0,
    });
    assertEquals([quiet.status, quiet.headers.get("x-ignored-params")], [200, null]);
    await quiet.body?.cancel();
  });
  await t.step("a value out of range for a field the model takes is a 400 naming it", async () => {
    const res = await post(`${server.url}/v1/images/generations`, {
      model: "black-forest-labs/FLUX.2-pro",
      prompt: "a cat",
      output_format: "webp",
    });
    assertEquals(res.status, 400);
    assertEquals((await res.json()).error.param, "output_format");
  });
});

Deno.test("STRICT_PARAMS=true refuses fields the model does not take", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, STRICT_PARAMS: "true" });
  const res = await post(
    `${server.url}/v1/chat/completions`,
    chat("Qwen/Qwen-Image", { batch_size: 2 }),
  );
  const body = await res.json();
  assertEquals([res.status, body.error.param, body.error.code], [
    400,
    "batch_size",
    "unsupported_parameter",
  ]);
});

Deno.test("OpenAI's defaults: GPT image names and edits answer b64_json; newer GPT names are aliases", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const generate = async (model: string) => {
    const res = await post(`${server.url}/v1/images/generations`, { model, prompt: "a cat" });
    const body = await res.json();
    assertEquals(res.status, 200, JSON.stringify(body));
    return body.data[0];
  };
  for (
    const model of [
      "gpt-image-1",
      "gpt-image-1.5",
      "gpt-image-1-mini",
      "gpt-image-2",
      "chatgpt-image-latest",
    ]
  ) {
    const image = await generate(model);
    assertEquals([typeof image.b64_json, image.url], ["string", undefined], model);
    assertEquals(fake.received.at(-1)!.body.model, "Qwen/Qwen-Image");
  }
  for (const model of ["dall-e-3", "Qwen/Qwen-Image"]) {
    assertMatch((await generate(model)).url, /^http/, model);
  }
  const models = await (await fetch(`${server.url}/v1/models`)).json();
  assert(models.data.some((m: { id: string }) => m.id === "gpt-image-2"));
  const edit = async (model: string) => {
    const res = await post(`${server.url}/v1/images/edits`, {
      model,
      prompt: "blue",
      images: [{ image_url: PNG_DATA_URI }],
    });
    return (await res.json()).data[0];
  };
  assertEquals(typeof (await edit("gpt-image-1")).b64_json, "string");
  assertEquals(fake.received.at(-1)!.body.model, "Qwen/Qwen-Image-Edit-2509");
  assertEquals(typeof (await edit("Qwen/Qwen-Image-Edit-2509")).b64_json, "string");
  assertMatch((await edit("dall-e-2")).url, /^http/);
});

Deno.test("stream: true on the Images API streams completed images the official SDK reads", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
  const events = [];
  for await (
    const event of await client.images.generate({
      model: "gpt-image-1",
      prompt: "a cat",
      n: 2,
      stream: true,
    })
  ) {
    events.push(event);
  }
  assertEquals(events.map((e) => e.type), [
    "image_generation.completed",
    "image_generation.completed",
  ]);
  assertEquals(
    decodeBase64(events[0].type === "image_generation.completed" ? events[0].b64_json : "")[1],
    0x50,
  );
  const png = decodeBase64(PNG_DATA_URI.split(",")[1]);
  const edits = [];
  for await (
    const event of await client.images.edit({
      model: "gpt-image-1",
      prompt: "blue",
      image: await toFile(png, "a.png", { type: "image/png" }),
      stream: true,
    })
  ) edits.push(event.type);
  assertEquals(edits, ["image_edit.completed"]);
  fake.queue.push({ status: 400, body: '{"code":20015,"message":"bad prompt","data":null}' });
  const failing = await fetch(`${server.url}/v1/images/generations`, {
    method: "POST",
    headers: { authorization: `Bearer ${TEST_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-image-1", prompt: "x", stream: true }),
  });
  const text = await failing.text();
  assertStringIncludes(text, "event: error\ndata: ");
  assertStringIncludes(text, "bad prompt");
});

Deno.test("streamed chat: a failure within the hold window is a real HTTP error; later ones are text first", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    STREAM_HOLD_MS: "600",
    KEEPALIVE_MS: "800",
  });
  const stream = (extra: Record<string, unknown> = {}) =>
    post(`${server.url}/v1/chat/completions`, chat("Qwen/Qwen-Image", { stream: true, ...extra }));
  await t.step("a fast 429 keeps its status and Retry-After, so SDKs retry", async () => {
    fake.queue.push({
      status: 429,
      body: '{"message":"IPM limit reached."}',
      headers: { "retry-after": "7" },
    });
    const res = await stream();
    assertEquals([res.status, res.headers.get("retry-after")], [429, "7"]);
    assertEquals((await res.json()).error.code, "rate_limit_exceeded");
  });
  await t.step(
    "a slow generation opens the stream within the window, then keeps it alive",
    async () => {
      fake.delayMs = 1_500;
      const started = Date.now();
      const res = await stream();
      const opened = Date.now() - started;
      assertEquals(res.status, 200);
      assert(opened >= 500 && opened < 900, `headers after ${opened} ms`);
      const frames = await readSse(res);
      assert(frames.length >= 4, frames.join("\n"));
      assertEquals(frames.at(-1), "[DONE]");
      fake.delayMs = 0;
    },
  );
  await t.step(
    "a failure after the stream opened: a readable content line, then the error event",
    async () => {
      fake.queue.push({
        status: 400,
        body: '{"code":20015,"message":"Invalid prompt","data":null}',
        delayMs: 900,
      });
      const res = await stream();
      assertEquals(res.status, 200);
      const frames = await readSse(res);
      const contents = frames.filter((f) =>
        f.startsWith("{") && JSON.parse(f).choices?.[0]?.delta?.content
      )
        .map((f) => JSON.parse(f).choices[0].delta.content);
      assertMatch(contents.join(""), /^⚠️ SiliconFlow: Invalid prompt/);
      assertEquals(JSON.parse(frames.at(-1)!).error.code !== undefined, true);
    },
  );
});

Deno.test("any SiliconFlow image model: listed in /v1/models, served with the generic schema", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  fake.listing.push(
    { id: "acme/Painter", subType: "text-to-image" },
    { id: "Qwen/Qwen-Image", subType: "text-to-image" },
    { id: "acme/Repaint", subType: "image-to-image" },
  );
  const list = async (key: string | null = TEST_KEY) => {
    const res = await fetch(`${server.url}/v1/models`, {
      headers: key ? { authorization: `Bearer ${key}` } : {},
    });
    return (await res.json()).data.map((m: { id: string; owned_by: string }) =>
      `${m.id}:${m.owned_by}`
    );
  };
  await t.step("merged with the built-in list once, and cached", async () => {
    const ids = await list();
    assert(ids.includes("acme/Painter:acme") && ids.includes("acme/Repaint:acme"));
    assertEquals(ids.filter((id: string) => id.startsWith("Qwen/Qwen-Image:")).length, 1);
    const calls = fake.listCalls();
    await list();
    assertEquals(fake.listCalls(), calls, "served from the cache");
    assertEquals(
      (await list(null)).some((id: string) => id.startsWith("acme/Painter:")),
      false,
    );
    const one = await fetch(`${server.url}/v1/models/acme/Repaint`, {
      headers: { authorization: `Bearer ${TEST_KEY}` },
    });
    assertEquals((await one.json()).id, "acme/Repaint");
  });
  await t.step("a listed model runs without parameter checks, and says so", async () => {
    const res = await post(`${server.url}/v1/chat/completions`, {
      model: "acme/Painter",
      messages: [{ role: "user", content: "a cat" }],
      image_size: "1024x1024",
      num_inference_steps: 8,
      cfg: 4,
    });
    const body = await res.json();
    assertEquals(res.status, 200, JSON.stringify(body));
    assertEquals(res.headers.get("x-parameter-checks"), "none");
    assertMatch(body.choices[0].message.content, /without parameter checks/);
    const sent = fake.received.at(-1)!.body;
    assertEquals([sent.model, sent.image_size, sent.num_inference_steps, "cfg" in sent], [
      "acme/Painter",
      "1024x1024",
      8,
      false,
    ]);
  });
  await t.step("an image-to-image model takes the input images as given", async () => {
    const res = await post(`${server.url}/v1/images/edits`, {
      model: "acme/Repaint",
      prompt: "blue",
      images: [{ image_url: PNG_DATA_URI }, { image_url: PNG_DATA_URI }],
    });
    assertEquals(res.status, 200, await res.clone().text());
    await res.body?.cancel();
    assertEquals([fake.received.at(-1)!.body.image, fake.received.at(-1)!.body.image2], [
      PNG_DATA_URI,
      PNG_DATA_URI,
    ]);
  });
  await t.step("a model nobody lists is still a 404", async () => {
    const res = await post(`${server.url}/v1/chat/completions`, chat("acme/Nope"));
    assertEquals(res.status, 404);
    await res.body?.cancel();
  });
});

Deno.test("when SiliconFlow's model list cannot be had, the built-in list stands", async () => {
  await using raw = startRawUpstream("reset-before-headers");
  await using server = startServer({ SILICONFLOW_BASE_URL: raw.baseUrl });
  const res = await fetch(`${server.url}/v1/models`, {
    headers: { authorization: `Bearer ${TEST_KEY}` },
  });
  assertEquals(res.status, 200);
  const ids = (await res.json()).data.map((m: { id: string }) => m.id);
  assert(ids.includes("Qwen/Qwen-Image") && ids.includes("dall-e-3"));
});
