import { assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { decodeBase64 } from "@std/encoding/base64";
import OpenAI from "openai";
import { markdownImages } from "../lib/openai/chat_history.ts";
import {
  bigImage,
  PNG_DATA_URI,
  post,
  startFakeUpstream,
  startServer,
  TEST_KEY,
} from "./_helpers.ts";

const contentOf = async (res: Response) => {
  const body = await res.json();
  assertEquals(res.status, 200, JSON.stringify(body));
  return body.choices[0].message.content as string;
};

Deno.test("prompt flags in chat: stripped, validated per model, and winning over body fields", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const chat = `${server.url}/v1/chat/completions`;
  const ask = (content: string, extra: Record<string, unknown> = {}, model = "Qwen/Qwen-Image") =>
    post(chat, { model, messages: [{ role: "user", content }], ...extra });

  await t.step("flags reach SiliconFlow as fields; --ar beats body image_size", async () => {
    await contentOf(
      await ask("海边的灯塔 --ar 16:9 --seed 42 --steps 30 --cfg 4", {
        image_size: "1328x1328",
        seed: 1,
      }),
    );
    assertEquals(fake.received.at(-1)!.body, {
      model: "Qwen/Qwen-Image",
      prompt: "海边的灯塔",
      seed: 42,
      num_inference_steps: 30,
      cfg: 4,
      image_size: "1664x928",
    });
  });
  await t.step("--guidance on Kolors, --n 2, --neg", async () => {
    const content = await contentOf(
      await ask('fox --guidance 7.5 --n 2 --neg "blurry"', {}, "Kwai-Kolors/Kolors"),
    );
    assertEquals(content.split("\n").length, 2);
    const sent = fake.received.at(-1)!.body;
    assertEquals([sent.guidance_scale, sent.batch_size, sent.negative_prompt], [7.5, 2, "blurry"]);
  });
  await t.step("a bad flag value is a 400 naming the field", async () => {
    const res = await ask("fox --seed abc");
    const body = await res.json();
    assertEquals([res.status, body.error.param], [400, "seed"]);
  });
  await t.step("out-of-range flag values are refused", async () => {
    const res = await ask("fox --steps 500");
    const body = await res.json();
    assertEquals([res.status, body.error.param], [400, "num_inference_steps"]);
    const ar = await ask("fox --ar 30:1");
    assertEquals([ar.status, (await ar.json()).error.param], [400, "aspect_ratio"]);
  });
  await t.step("body aspect_ratio maps to the nearest recommended size", async () => {
    await contentOf(await ask("fox", { aspect_ratio: "3:4" }));
    assertEquals(fake.received.at(-1)!.body.image_size, "1140x1472");
  });
});

Deno.test("lasting images: data delivery embeds, falls back with a note, and can be chosen per request", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, IMAGE_DELIVERY: "data" });
  const chat = `${server.url}/v1/chat/completions`;
  const origin = new URL(fake.baseUrl).origin;
  const ask = (extra: Record<string, unknown> = {}) =>
    post(chat, {
      model: "Qwen/Qwen-Image",
      messages: [{ role: "user", content: "x" }],
      seed: 3,
      ...extra,
    });

  await t.step("embedded as a data URI, seed in the alt text", async () => {
    const content = await contentOf(await ask({ image_size: "64x64" }));
    assertMatch(content, /^!\[seed 3\]\(data:image\/png;base64,[A-Za-z0-9+/=]+\)$/);
  });
  await t.step("a large image comes through byte for byte", async () => {
    const size = 8 * 1024 * 1024;
    fake.queue.push({
      status: 200,
      body: JSON.stringify({ images: [{ url: `${origin}/blob/${size}.png` }], seed: 9 }),
    });
    const content = await contentOf(await ask());
    const b64 = /base64,([^)]+)\)/.exec(content)![1];
    assertEquals(decodeBase64(b64), bigImage(size));
  });
  await t.step("a failed download keeps the link and says so", async () => {
    fake.queue.push({
      status: 200,
      body: JSON.stringify({ images: [{ url: "http://127.0.0.1:9/gone.png" }] }),
    });
    const content = await contentOf(await ask());
    const [image, note] = content.split("\n");
    assertEquals(image, "![seed 3](http://127.0.0.1:9/gone.png)");
    assertStringIncludes(note, "could not be embedded");
  });
  await t.step("image_delivery: url in the body overrides the server's data mode", async () => {
    assertMatch(await contentOf(await ask({ image_delivery: "url" })), /\]\(http:\/\//);
  });
  await t.step("a bad image_delivery is a 400", async () => {
    const res = await ask({ image_delivery: "carrier-pigeon" });
    assertEquals([res.status, (await res.json()).error.param], [400, "image_delivery"]);
  });
});

Deno.test("multi-turn editing takes the image from the conversation", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const chat = `${server.url}/v1/chat/completions`;
  const edit = (messages: unknown[], model = "Qwen/Qwen-Image-Edit") =>
    post(chat, { model, messages });

  await t.step("generate a cat, then put a hat on it", async () => {
    const first = await contentOf(
      await post(chat, {
        model: "Qwen/Qwen-Image",
        messages: [{ role: "user", content: "a cat" }],
      }),
    );
    const url = markdownImages(first)[0];
    await contentOf(
      await edit([
        { role: "user", content: "a cat" },
        { role: "assistant", content: first },
        { role: "user", content: "put a hat on it" },
      ]),
    );
    assertEquals(fake.received.at(-1)!.body, {
      model: "Qwen/Qwen-Image-Edit",
      prompt: "put a hat on it",
      image: url,
    });
  });
  await t.step("the newest message with images wins; a user's attachment counts", async () => {
    await contentOf(
      await edit([
        { role: "assistant", content: "![seed 1](https://old.example/1.png)" },
        {
          role: "user",
          content: [{ type: "text", text: "use this" }, {
            type: "image_url",
            image_url: { url: PNG_DATA_URI },
          }],
        },
        { role: "assistant", content: "Sure, what should I change?" },
        { role: "user", content: "make it purple" },
      ]),
    );
    assertEquals(fake.received.at(-1)!.body.image, PNG_DATA_URI);
  });
  await t.step("up to the model's limit, in order", async () => {
    await contentOf(
      await edit([
        {
          role: "assistant",
          content:
            "![a](https://x.example/1.png)\n![b](https://x.example/2.png)\n![c](https://x.example/3.png)\n![d](https://x.example/4.png)",
        },
        { role: "user", content: "combine them" },
      ], "Qwen/Qwen-Image-Edit-2509"),
    );
    const sent = fake.received.at(-1)!.body;
    assertEquals([sent.image, sent.image2, sent.image3], [
      "https://x.example/1.png",
      "https://x.example/2.png",
      "https://x.example/3.png",
    ]);
  });
  await t.step("broken markdown and truncated data URIs are skipped", async () => {
    await contentOf(
      await edit([
        { role: "assistant", content: "![ok](https://x.example/good.png)" },
        {
          role: "assistant",
          content:
            "![broken](data:image/png;base64,@@@) and ![nope](ftp://x/y.png) and ![half](https://",
        },
        { role: "user", content: "again" },
      ]),
    );
    assertEquals(fake.received.at(-1)!.body.image, "https://x.example/good.png");
  });
  await t.step("an expired link gets SiliconFlow's error plus a hint", async () => {
    fake.queue.push({ status: 400, body: '{"code":20015,"message":"Failed to download image"}' });
    const res = await edit([
      { role: "assistant", content: "![seed 1](https://expired.example/1.png)" },
      { role: "user", content: "add a hat" },
    ]);
    const body = await res.json();
    assertEquals(res.status, 400);
    assertStringIncludes(body.error.message, "Failed to download image");
    assertStringIncludes(body.error.message, "expire after an hour");
  });
  await t.step("nothing usable: a clear 400", async () => {
    const res = await edit([{ role: "assistant", content: "no pictures here" }, {
      role: "user",
      content: "add a hat",
    }]);
    const body = await res.json();
    assertEquals([res.status, body.error.code], [400, "image_required"]);
    assertStringIncludes(body.error.message, "attach an image");
  });
  await t.step("text-to-image models never pull images from history", async () => {
    await contentOf(
      await post(chat, {
        model: "Kwai-Kolors/Kolors",
        messages: [{ role: "assistant", content: "![x](https://x.example/1.png)" }, {
          role: "user",
          content: "a dog",
        }],
      }),
    );
    assertEquals(fake.received.at(-1)!.body.image, undefined);
  });
});

Deno.test("progress lines as reasoning_content, read by the official SDK", async (t) => {
  await using fake = startFakeUpstream();
  fake.delayMs = 250;
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    KEEPALIVE_MS: "60",
    PROGRESS: "reasoning",
  });
  const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
  await t.step("PROGRESS=reasoning", async () => {
    const stream = await client.chat.completions.create({
      model: "Qwen/Qwen-Image",
      messages: [{ role: "user", content: "a kite" }],
      stream: true,
    });
    let reasoning = "";
    let content = "";
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta as
        | { content?: string; reasoning_content?: string }
        | undefined;
      reasoning += delta?.reasoning_content ?? "";
      content += delta?.content ?? "";
    }
    assertStringIncludes(reasoning, "Generating 1 image with Qwen/Qwen-Image at 1328x1328");
    assertStringIncludes(reasoning, "Still working…");
    assertMatch(reasoning, /Done in \d+ s\./);
    assertMatch(content, /^!\[seed \d+\]\(http/);
    assertEquals(content.includes("Generating"), false, "the final message stays clean");
  });
  await t.step("progress: off in the body turns it off", async () => {
    // An extra body field, as clients send it (a variable skips the excess-property check).
    const params = {
      model: "Qwen/Qwen-Image",
      messages: [{ role: "user" as const, content: "a kite" }],
      stream: true as const,
      progress: "off",
    };
    const stream = await client.chat.completions.create(params);
    let reasoning = "";
    for await (const chunk of stream) {
      reasoning += (chunk.choices[0]?.delta as { reasoning_content?: string } | undefined)
        ?.reasoning_content ?? "";
    }
    assertEquals(reasoning, "");
  });
  await t.step("an upstream failure mid-stream is raised by the SDK", async () => {
    fake.queue.push({ status: 503, body: '{"code":50505,"message":"Model service overloaded."}' });
    const stream = await client.chat.completions.create({
      model: "Qwen/Qwen-Image",
      messages: [{ role: "user", content: "a kite" }],
      stream: true,
    });
    let raised: unknown;
    try {
      for await (const _ of stream) { /* read on */ }
    } catch (err) {
      raised = err;
    }
    assertEquals(raised instanceof OpenAI.APIError, true);
    assertStringIncludes(String((raised as Error).message), "overloaded");
  });
});
