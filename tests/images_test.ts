import { assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import OpenAI, { toFile } from "openai";
import { decodeBase64 } from "@std/encoding/base64";
import { PNG_DATA_URI, post, startFakeUpstream, startServer, TEST_KEY } from "./_helpers.ts";

const PNG = decodeBase64(PNG_DATA_URI.split(",")[1]);
const JPEG = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46, 0x49, 0x46, 0, 1]);
const WEBP = new Uint8Array([
  ...new TextEncoder().encode("RIFF"),
  4,
  0,
  0,
  0,
  ...new TextEncoder().encode("WEBPVP8 "),
]);

function form(
  fields: Record<string, string>,
  files: [string, Uint8Array, string][] = [],
): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  for (const [name, bytes, filename] of files) {
    f.append(name, new Blob([bytes as Uint8Array<ArrayBuffer>]), filename);
  }
  return f;
}

function postForm(url: string, body: FormData, key: string | null = TEST_KEY): Promise<Response> {
  return fetch(url, {
    method: "POST",
    body,
    headers: key ? { authorization: `Bearer ${key}` } : {},
  });
}

Deno.test("images/generations: url and b64_json, n both ways, sizes, aliases", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const url = `${server.url}/v1/images/generations`;

  await t.step("url answer, with OpenAI-only fields ignored", async () => {
    const res = await post(url, {
      model: "Qwen/Qwen-Image",
      prompt: "a red kite",
      size: "1792x1024",
      quality: "hd",
      style: "vivid",
      background: "auto",
      moderation: "low",
      output_compression: 50,
      user: "u1",
    });
    const body = await res.json();
    assertEquals(res.status, 200, JSON.stringify(body));
    assertEquals(typeof body.created, "number");
    assertMatch(body.data[0].url, /\/demo\/images\/1664x928\/\d+\.png$/);
    assertEquals(fake.received.at(-1)!.body, {
      model: "Qwen/Qwen-Image",
      prompt: "a red kite",
      image_size: "1664x928",
    });
  });

  await t.step("b64_json downloads the generated image", async () => {
    const res = await post(url, {
      model: "Qwen/Qwen-Image",
      prompt: "x",
      response_format: "b64_json",
      image_size: "64x64",
    });
    const body = await res.json();
    const bytes = decodeBase64(body.data[0].b64_json);
    assertEquals([...bytes.slice(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    assertEquals(body.data[0].url, undefined);
  });

  await t.step("n on Kolors is batch_size", async () => {
    const body = await (await post(url, { model: "Kwai-Kolors/Kolors", prompt: "x", n: 3 })).json();
    assertEquals(body.data.length, 3);
    assertEquals(fake.received.at(-1)!.body.batch_size, 3);
  });

  await t.step("n elsewhere is concurrent calls, seeds counted up, order kept", async () => {
    const before = fake.received.length;
    const body = await (await post(url, { model: "Qwen/Qwen-Image", prompt: "x", n: 3, seed: 40 }))
      .json();
    assertEquals(body.data.map((d: { url: string }) => /\/(\d+)\.png$/.exec(d.url)![1]), [
      "40",
      "41",
      "42",
    ]);
    assertEquals(fake.received.length - before, 3);
  });

  await t.step("some calls failing is reported, not hidden", async () => {
    fake.queue.push({ status: 200, body: '{"images":[{"url":"http://127.0.0.1:1/a.png"}]}' });
    fake.queue.push({ status: 503, body: '{"code":50505,"message":"Model service overloaded."}' });
    const res = await post(url, { model: "Qwen/Qwen-Image", prompt: "x", n: 2 });
    const body = await res.json();
    assertEquals(body.data.length, 1);
    assertEquals(body.partial_failure.failed, 1);
    assertStringIncludes(body.partial_failure.message, "overloaded");
    assertStringIncludes(res.headers.get("x-partial-failure")!, "1 of 2");
  });

  await t.step("aliases: dall-e-3, dall-e-2 default, and MODEL_ALIASES", async () => {
    await (await post(url, { model: "dall-e-3", prompt: "x", size: "1024x1024" })).body?.cancel();
    assertEquals(fake.received.at(-1)!.body.model, "Qwen/Qwen-Image");
    assertEquals(fake.received.at(-1)!.body.image_size, "1328x1328");
    await (await post(url, { prompt: "x" })).body?.cancel();
    assertEquals(fake.received.at(-1)!.body.model, "Kwai-Kolors/Kolors");
  });

  await t.step("image_size wins over size; SiliconFlow fields pass", async () => {
    await (await post(url, {
      model: "Qwen/Qwen-Image",
      prompt: "x",
      size: "1024x1024",
      image_size: "928x1664",
      seed: 5,
      negative_prompt: "fog",
      num_inference_steps: 20,
      cfg: 4,
    })).body?.cancel();
    assertEquals(fake.received.at(-1)!.body, {
      model: "Qwen/Qwen-Image",
      prompt: "x",
      image_size: "928x1664",
      seed: 5,
      negative_prompt: "fog",
      num_inference_steps: 20,
      cfg: 4,
    });
  });
});

Deno.test("images/generations and edits: bad input is a 4xx in OpenAI shape", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    MODEL_ALIASES: "house=Qwen/Qwen-Image",
  });
  const gen = `${server.url}/v1/images/generations`;
  const edits = `${server.url}/v1/images/edits`;
  const check = async (res: Response, status: number, param: string | null) => {
    const body = await res.json();
    assertEquals(res.status, status, JSON.stringify(body));
    assertEquals(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
    assertEquals(body.error.param, param);
  };
  await t.step(
    "no prompt",
    async () => check(await post(gen, { model: "dall-e-3" }), 400, "prompt"),
  );
  await t.step(
    "prompt not a string",
    async () => check(await post(gen, { prompt: 5 }), 400, "prompt"),
  );
  await t.step(
    "bad n",
    async () => check(await post(gen, { prompt: "x", model: "house", n: 11 }), 400, "n"),
  );
  await t.step(
    "n not a number",
    async () => check(await post(gen, { prompt: "x", n: [1] }), 400, "n"),
  );
  await t.step(
    "unknown model",
    async () => check(await post(gen, { prompt: "x", model: "dall-e-9" }), 404, "model"),
  );
  await t.step(
    "model not a string",
    async () => check(await post(gen, { prompt: "x", model: 3 }), 400, "model"),
  );
  await t.step(
    "bad response_format",
    async () =>
      check(await post(gen, { prompt: "x", response_format: "xml" }), 400, "response_format"),
  );
  await t.step(
    "bad size",
    async () => check(await post(gen, { prompt: "x", size: "big" }), 400, "size"),
  );
  await t.step(
    "no key",
    async () => check(await post(gen, { prompt: "x" }, { key: null }), 401, null),
  );
  await t.step(
    "edit: no image",
    async () =>
      check(
        await postForm(edits, form({ prompt: "x", model: "Qwen/Qwen-Image-Edit" })),
        400,
        "image",
      ),
  );
  await t.step("edit: not an image file", async () => {
    const res = await postForm(
      edits,
      form({ prompt: "x", model: "Qwen/Qwen-Image-Edit" }, [[
        "image",
        new TextEncoder().encode("hello"),
        "cat.png",
      ]]),
    );
    await check(res, 400, "image");
  });
  await t.step("edit: oversized file", async () => {
    const big = new Uint8Array(10 * 1024 * 1024 + 1);
    big.set(PNG);
    const res = await postForm(
      edits,
      form({ prompt: "x", model: "Qwen/Qwen-Image-Edit" }, [["image", big, "big.png"]]),
    );
    await check(res, 400, "image");
  });
  await t.step("edit: too many images for the model", async () => {
    const res = await postForm(
      edits,
      form({ prompt: "x", model: "Qwen/Qwen-Image-Edit" }, [["image[]", PNG, "a.png"], [
        "image[]",
        PNG,
        "b.png",
      ]]),
    );
    await check(res, 400, "image");
  });
  await t.step(
    "edit: wrong content type",
    async () =>
      check(
        await post(edits, "prompt=x", { headers: { "content-type": "text/plain" } }),
        415,
        null,
      ),
  );
  assertEquals(fake.received.length, 0);
});

Deno.test("images/edits: every multipart form, JSON form, sniffed types", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const edits = `${server.url}/v1/images/edits`;
  const forms: [string, [string, Uint8Array, string][], string[]][] = [
    ["single image", [["image", PNG, "a.png"]], ["image/png"]],
    ["repeated image", [["image", PNG, "a.png"], ["image", JPEG, "b.jpg"]], [
      "image/png",
      "image/jpeg",
    ]],
    ["repeated image[]", [["image[]", PNG, "a.png"], ["image[]", JPEG, "b"], [
      "image[]",
      WEBP,
      "c.bin",
    ]], ["image/png", "image/jpeg", "image/webp"]],
  ];
  for (const [name, files, mimes] of forms) {
    await t.step(name, async () => {
      const res = await postForm(
        edits,
        form(
          { prompt: "add a hat", model: "Qwen/Qwen-Image-Edit-2509", n: "1", quality: "high" },
          files,
        ),
      );
      assertEquals(res.status, 200, await res.clone().text());
      assertEquals((await res.json()).data.length, 1);
      const sent = fake.received.at(-1)!.body;
      const keys = ["image", "image2", "image3"].slice(0, mimes.length);
      assertEquals(keys.map((k) => String(sent[k]).split(";")[0]), mimes.map((m) => `data:${m}`));
      assertEquals(sent.image_size, undefined);
    });
  }
  await t.step("gpt-image-1 with images goes to the edit model", async () => {
    const res = await postForm(
      edits,
      form({ prompt: "x", model: "gpt-image-1", size: "1024x1024", response_format: "b64_json" }, [[
        "image",
        PNG,
        "a.png",
      ]]),
    );
    assertEquals(res.status, 200);
    assertEquals(typeof (await res.json()).data[0].b64_json, "string");
    assertEquals(fake.received.at(-1)!.body.model, "Qwen/Qwen-Image-Edit-2509");
  });
  await t.step(
    "a mask, as a file or in JSON, is dropped and named: no model takes one",
    async () => {
      const res = await postForm(
        edits,
        form({ prompt: "x", model: "Qwen/Qwen-Image-Edit-2509" }, [["image", PNG, "a.png"], [
          "mask",
          PNG,
          "m.png",
        ]]),
      );
      assertEquals([res.status, res.headers.get("x-ignored-params")], [200, "mask"]);
      await res.body?.cancel();
      assertEquals("mask" in fake.received.at(-1)!.body, false);
      const json = await post(edits, {
        prompt: "x",
        model: "Qwen/Qwen-Image-Edit-2509",
        images: [{ image_url: PNG_DATA_URI }],
        mask: { image_url: PNG_DATA_URI },
      });
      assertEquals([json.status, json.headers.get("x-ignored-params")], [200, "mask"]);
      await json.body?.cancel();
    },
  );
  await t.step(
    "JSON body with image (one or a list) or plain links in images; none is a 400",
    async () => {
      for (
        const [fields, count] of [
          [{ image: PNG_DATA_URI }, 1],
          [{ image: [PNG_DATA_URI, PNG_DATA_URI] }, 2],
          [{ images: [PNG_DATA_URI] }, 1],
        ] as const
      ) {
        const res = await post(edits, {
          prompt: "x",
          model: "Qwen/Qwen-Image-Edit-2509",
          ...fields,
        });
        assertEquals(res.status, 200, await res.clone().text());
        await res.body?.cancel();
        const sent = fake.received.at(-1)!.body;
        assertEquals([sent.image, sent.image2], [
          PNG_DATA_URI,
          count === 2 ? PNG_DATA_URI : undefined,
        ]);
      }
      for (const fields of [{}, { images: [] }, { image: ["ftp://x"] }]) {
        const res = await post(edits, { prompt: "x", model: "gpt-image-1", ...fields });
        const { error } = await res.json();
        assertEquals(res.status, 400, JSON.stringify(error));
        assertEquals(error.param, "image" in fields ? "image[0]" : "images");
      }
    },
  );
  await t.step("JSON body with images[].image_url", async () => {
    const res = await post(edits, {
      prompt: "x",
      model: "Qwen/Qwen-Image-Edit",
      images: [{ image_url: PNG_DATA_URI }],
    });
    assertEquals(res.status, 200);
    assertEquals(fake.received.at(-1)!.body.image, PNG_DATA_URI);
  });
});

Deno.test("the official openai SDK: images.generate and images.edit with toFile", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
  const generated = await client.images.generate({
    model: "dall-e-3",
    prompt: "a paper boat",
    size: "1024x1792",
    response_format: "b64_json",
  });
  assertEquals(decodeBase64(generated.data![0].b64_json!)[1], 0x50);
  assertEquals(fake.received.at(-1)!.body.image_size, "928x1664");
  const edited = await client.images.edit({
    model: "Qwen/Qwen-Image-Edit-2509",
    prompt: "make it blue",
    image: [await toFile(PNG, "a.png", { type: "image/png" }), await toFile(JPEG, "b.jpg")],
  });
  // Edits answer base64 when the client names no format, as OpenAI's do (only dall-e-2's are URLs).
  assertEquals(decodeBase64(edited.data![0].b64_json!)[1], 0x50);
  assertEquals(typeof fake.received.at(-1)!.body.image2, "string");
  try {
    await client.images.generate({ model: "nope", prompt: "x" });
    throw new Error("should fail");
  } catch (err) {
    assertEquals(err instanceof OpenAI.NotFoundError, true);
  }
});

Deno.test("images/edits: MAX_BODY_BYTES holds for multipart, declared or streamed", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, MAX_BODY_BYTES: "4096" });
  const edits = `${server.url}/v1/images/edits`;
  const big = new Uint8Array(10_000);
  big.set(PNG);
  const declared = await postForm(edits, form({ prompt: "x" }, [["image", big, "a.png"]]));
  assertEquals([declared.status, (await declared.json()).error.code], [413, "request_too_large"]);
  const multipart = new Response(form({ prompt: "x" }, [["image", big, "a.png"]]));
  const streamed = await fetch(edits, {
    method: "POST",
    body: multipart.body,
    headers: {
      authorization: `Bearer ${TEST_KEY}`,
      "content-type": multipart.headers.get("content-type")!,
    },
  });
  assertEquals([streamed.status, (await streamed.json()).error.code], [413, "request_too_large"]);
  assertEquals(fake.received.length, 0);
});
