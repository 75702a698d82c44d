/**
 * The shapes clients send in 2026: sizes as ratios and tiers on every route, GPT Image 2.5 names
 * and qualities, the new SiliconFlow models and both sites' catalogues, Codex's tool entry and
 * OpenRouter's chat image shape.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import OpenAI from "openai";
import { post, readSse, startFakeUpstream, startServer, TEST_KEY } from "./_helpers.ts";

const user = (content: string) => [{ role: "user", content }];

Deno.test("GPT Image 2.5 names and qualities through the official SDK", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1` });
  for (const model of ["gpt-image-2.5-flare", "gpt-image-2.5-sunburst-2026-09-08"]) {
    const image = await client.images.generate({
      model,
      prompt: "a lighthouse",
      size: "1536x1024",
      // Newer than the stored SDK's enum.
      quality: "xhigh" as "high",
    });
    assertEquals(typeof image.data?.[0].b64_json, "string", "b64 by default, as OpenAI does");
    const sent = fake.received.at(-1)!.body;
    assertEquals([sent.model, sent.image_size, sent.num_inference_steps], [
      "Qwen/Qwen-Image",
      "1584x1056",
      40,
    ]);
  }
  const res = await post(`${server.url}/v1/images/generations`, {
    model: "black-forest-labs/FLUX.2-pro",
    prompt: "a fox",
    quality: "max",
  });
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("x-ignored-params"), "quality");
  await res.body?.cancel();
});

Deno.test("one size vocabulary on chat, Images, Responses and Videos", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const sent = () => fake.received.at(-1)!.body.image_size;
  const cases: [string, Record<string, unknown>, string][] = [
    ["/v1/images/generations", { model: "Qwen/Qwen-Image", prompt: "a", size: "16:9" }, "1664x928"],
    ["/v1/images/generations", { model: "Qwen/Qwen-Image", prompt: "a", size: "2K" }, "2048x2048"],
    [
      "/v1/images/generations",
      { model: "Qwen/Qwen-Image", prompt: "a", aspect_ratio: "9:16", size: "4K" },
      "2304x4096",
    ],
    ["/v1/images/generations", { model: "dall-e-2", prompt: "a", size: "4:3" }, "1184x880"],
    ["/v1/chat/completions", { model: "dall-e-3", messages: user("a"), size: "3:2" }, "1584x1056"],
    [
      "/v1/chat/completions",
      {
        model: "Qwen/Qwen-Image",
        messages: user("a"),
        modalities: ["image", "text"],
        image_config: { aspect_ratio: "16:9", image_size: "2K" },
      },
      "2736x1536",
    ],
    [
      "/v1/chat/completions",
      { model: "Tongyi-MAI/Z-Image", messages: user("a"), image_config: { aspect_ratio: "4:3" } },
      "1200x896",
    ],
    [
      "/v1/responses",
      {
        model: "gpt-image-2",
        input: "a",
        tools: [{ type: "image_generation", size: "1024x1536", quality: "high" }],
      },
      "1056x1584",
    ],
  ];
  for (const [path, body, want] of cases) {
    const res = await post(`${server.url}${path}`, body);
    assertEquals(res.status, 200, `${path} ${JSON.stringify(body)}: ${await res.clone().text()}`);
    await res.body?.cancel();
    assertEquals(sent(), want, `${path} ${JSON.stringify(body)}`);
  }
  const wrong = await post(`${server.url}/v1/images/generations`, {
    model: "Qwen/Qwen-Image",
    prompt: "a",
    size: "3K",
  });
  assertEquals(wrong.status, 400);
  const error = (await wrong.json()).error;
  assertEquals(error.param, "size");
  assertMatch(error.message, /ratio such as 16:9, a tier 1K, 2K or 4K/);
});

Deno.test("/v1/models shows what each site lists, images and videos", async () => {
  await using cn = startFakeUpstream();
  await using com = startFakeUpstream();
  cn.listing.push(
    { id: "acme/Painter", subType: "text-to-image" },
    { id: "acme/Motion", subType: "video" },
  );
  com.listing.push({ id: "acme/Other", subType: "text-to-image" });
  await using a = startServer({ SILICONFLOW_BASE_URL: cn.baseUrl });
  await using b = startServer({ SILICONFLOW_BASE_URL: com.baseUrl });
  const ids = async (url: string) => {
    const res = await fetch(`${url}/v1/models`, {
      headers: { authorization: `Bearer ${TEST_KEY}` },
    });
    return (await res.json()).data.map((m: { id: string }) => m.id) as string[];
  };
  const [onCn, onCom] = [await ids(a.url), await ids(b.url)];
  assert(onCn.includes("acme/Painter") && onCn.includes("acme/Motion"), onCn.join());
  assert(!onCn.includes("acme/Other") && onCom.includes("acme/Other"));
  for (const id of ["Tongyi-MAI/Z-Image", "baidu/ERNIE-Image-Turbo", "gpt-image-2.5-flare"]) {
    assert(onCn.includes(id) && onCom.includes(id), id);
  }
  // A listed video model makes videos, with the Wan models' sizes.
  const res = await post(`${a.url}/v1/videos`, {
    model: "acme/Motion",
    prompt: "waves",
    size: "9:16",
  });
  const video = await res.json();
  assertEquals(res.status, 200, JSON.stringify(video));
  assertEquals(cn.received.at(-1)!.body.model, "acme/Motion");
  assertEquals(cn.received.at(-1)!.body.image_size, "720x1280");
});

Deno.test("the new models run with what they are known to take, the rest named", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    STRICT_PARAMS: "true",
  });
  for (const model of ["Tongyi-MAI/Z-Image-Turbo", "baidu/ERNIE-Image-Turbo"]) {
    const res = await post(`${server.url}/v1/images/generations`, {
      model,
      prompt: "a",
      num_inference_steps: 8,
      negative_prompt: "blur",
      seed: 7,
    });
    assertEquals(res.status, 200, await res.clone().text());
    assertEquals(res.headers.get("x-ignored-params"), "num_inference_steps, negative_prompt");
    await res.body?.cancel();
    const sent = fake.received.at(-1)!.body;
    assertEquals([sent.model, sent.seed, "num_inference_steps" in sent], [model, 7, false]);
  }
  const res = await post(`${server.url}/v1/images/generations`, {
    model: "Tongyi-MAI/Z-Image",
    prompt: "a",
    guidance_scale: 4,
    negative_prompt: "blur",
  });
  assertEquals(res.status, 200, await res.clone().text());
  await res.body?.cancel();
  assertEquals(fake.received.at(-1)!.body.guidance_scale, 4);
});

Deno.test("OpenRouter's chat image shape: message.images and delta.images, lasting links", async () => {
  await using fake = startFakeUpstream();
  const store = await Deno.makeTempDir();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    IMAGE_STORE: store,
    IMAGE_DELIVERY: "url",
  });
  const body = {
    model: "Qwen/Qwen-Image",
    messages: user("a red kite"),
    modalities: ["image", "text"],
    n: 2,
    seed: 5,
  };
  const res = await post(`${server.url}/v1/chat/completions`, body);
  const answer = await res.json();
  assertEquals(res.status, 200, JSON.stringify(answer));
  const message = answer.choices[0].message;
  assertEquals(message.images.length, 2);
  for (const image of message.images) {
    assertEquals(image.type, "image_url");
    assertMatch(image.image_url.url, /^http:\/\/127\.0\.0\.1:\d+\/images\/[\w-]+\.png$/);
    const png = await fetch(image.image_url.url);
    assertEquals([png.status, png.headers.get("content-type")], [200, "image/png"]);
    await png.body?.cancel();
  }
  assertEquals(message.content, "Image 1: seed 5.\nImage 2: seed 6.");

  const streamed = await post(`${server.url}/v1/chat/completions`, { ...body, stream: true });
  const chunks = (await readSse(streamed)).filter((f) => f.startsWith("{")).map((f) =>
    JSON.parse(f)
  );
  const images = chunks.flatMap((c) => c.choices[0]?.delta?.images ?? []);
  assertEquals(images.length, 2);
  assertMatch(images[0].image_url.url, /\/images\/[\w-]+\.png$/);

  // Without modalities nothing changes: markdown, SiliconFlow's links (IMAGE_DELIVERY=url).
  const plain = await (await post(`${server.url}/v1/chat/completions`, {
    model: "Qwen/Qwen-Image",
    messages: user("a red kite"),
  })).json();
  assertEquals(plain.choices[0].message.images, undefined);
  assertMatch(
    plain.choices[0].message.content,
    /^!\[seed \d+\]\(http:\/\/127\.0\.0\.1:\d+\/demo\//,
  );
  await Deno.remove(store, { recursive: true });
});

Deno.test("Codex's image_generation tool entry on /v1/responses", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1` });
  const { data: response, response: raw } = await client.responses.create({
    model: "black-forest-labs/FLUX.2-pro",
    input: "a paper boat",
    tools: [{
      type: "image_generation",
      output_format: "jpeg",
      quality: "high",
      size: "1024x1536",
      background: "opaque",
      partial_images: 2,
      moderation: "low",
    }],
  }).withResponse();
  assertEquals(response.output.map((o) => o.type), ["image_generation_call", "message"]);
  const sent = fake.received.at(-1)!.body;
  assertEquals([sent.output_format, sent.image_size], ["jpeg", "768x1024"]);
  assertEquals(
    raw.headers.get("x-ignored-params"),
    "image_generation.background, image_generation.partial_images, image_generation.moderation",
  );
  // Codex's own minimal entry, on a model with no output format: named, never refused.
  const res = await post(`${server.url}/v1/responses`, {
    model: "gpt-image-2",
    input: "a paper boat",
    tools: [{ type: "image_generation", output_format: "png" }],
    stream: true,
  });
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("x-ignored-params"), "output_format");
  assert((await res.text()).includes("event: response.completed"));
});
