/**
 * Lasting images end to end: answers link to this server's /images/…, which keeps working after
 * SiliconFlow's own link has expired; a second turn edits a stored image; a failing store falls
 * back to SiliconFlow's link and says so; made-up ids are 404s.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import S3rver from "s3rver";
import { bigImage, post, startFakeUpstream, startServer, TEST_KEY } from "./_helpers.ts";

const LINK = /\]\((http:\/\/127\.0\.0\.1:\d+\/images\/[A-Za-z0-9_-]{22}\.png)\)/;
// The local store's sweep timer lives as long as its server.
const opts = {};

/** s3rver on a loopback port with an `images` bucket, in a folder of its own. */
async function startS3(): Promise<{ port: number } & AsyncDisposable> {
  const directory = await Deno.makeTempDir();
  const s3 = new S3rver({
    port: 0,
    address: "127.0.0.1",
    silent: true,
    directory,
    configureBuckets: [{ name: "images" }],
  });
  const { port } = await s3.run();
  return {
    port,
    async [Symbol.asyncDispose]() {
      await s3.close();
      await Deno.remove(directory, { recursive: true });
    },
  };
}

async function chatImage(url: string, model = "Qwen/Qwen-Image"): Promise<string> {
  const res = await post(`${url}/v1/chat/completions`, {
    model,
    messages: [{ role: "user", content: "a lighthouse" }],
  });
  const body = await res.json();
  assertEquals(res.status, 200, JSON.stringify(body));
  return body.choices[0].message.content;
}

Deno.test({
  name: "local store: lasting links, caching, ranges, 404s and a second-turn edit",
  ...opts,
  async fn(t) {
    const root = await Deno.makeTempDir();
    await using fake = startFakeUpstream();
    await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, IMAGE_STORE: root });
    try {
      const content = await chatImage(server.url);
      const link = LINK.exec(content)?.[1];
      assert(link, content);
      await t.step("the link works after SiliconFlow's has expired", async () => {
        fake.expired = true;
        const res = await fetch(link!);
        assertEquals(res.status, 200);
        assertEquals(res.headers.get("content-type"), "image/png");
        assertEquals(res.headers.get("cache-control"), "public, max-age=31536000, immutable");
        const bytes = new Uint8Array(await res.arrayBuffer());
        assertEquals([bytes[1], bytes[2], bytes[3]], [0x50, 0x4e, 0x47]);
        const etag = res.headers.get("etag")!;
        const again = await fetch(link!, { headers: { "if-none-match": etag } });
        assertEquals(again.status, 304);
        await again.body?.cancel();
        const part = await fetch(link!, { headers: { range: "bytes=1-3" } });
        assertEquals([part.status, part.headers.get("content-range")], [
          206,
          `bytes 1-3/${bytes.length}`,
        ]);
        assertEquals([...new Uint8Array(await part.arrayBuffer())], [0x50, 0x4e, 0x47]);
        const beyond = await fetch(link!, { headers: { range: `bytes=${bytes.length}-` } });
        assertEquals(beyond.status, 416);
        await beyond.body?.cancel();
        fake.expired = false;
      });
      await t.step("HEAD answers GET's headers with no body; a range and a 304 too", async () => {
        const got = await fetch(link!);
        const size = (await got.arrayBuffer()).byteLength;
        const head = await fetch(link!, { method: "HEAD" });
        assertEquals(head.status, 200);
        for (const name of ["content-type", "etag", "cache-control", "accept-ranges"]) {
          assertEquals(head.headers.get(name), got.headers.get(name), name);
        }
        assertEquals(head.headers.get("content-length"), String(size));
        assertEquals((await head.arrayBuffer()).byteLength, 0);
        const part = await fetch(link!, { method: "HEAD", headers: { range: "bytes=0-9" } });
        assertEquals([part.status, part.headers.get("content-length")], [206, "10"]);
        await part.body?.cancel();
        const cached = await fetch(link!, {
          method: "HEAD",
          headers: { "if-none-match": got.headers.get("etag")! },
        });
        assertEquals(cached.status, 304);
        await cached.body?.cancel();
        const gone = await fetch(`${server.url}/images/AAAAAAAAAAAAAAAAAAAAAA.png`, {
          method: "HEAD",
        });
        assertEquals(gone.status, 404);
        await gone.body?.cancel();
      });
      await t.step("a made-up id is a 404, and the route lists nothing", async () => {
        for (
          const path of ["/images/AAAAAAAAAAAAAAAAAAAAAA.png", "/images/", "/images/..%2Fx.png"]
        ) {
          const res = await fetch(`${server.url}${path}`);
          assertEquals(res.status, 404, path);
          await res.body?.cancel();
        }
      });
      await t.step("a second turn edits yesterday's image from the store", async () => {
        const res = await post(`${server.url}/v1/chat/completions`, {
          model: "Qwen/Qwen-Image-Edit-2509",
          messages: [
            { role: "user", content: "a lighthouse" },
            { role: "assistant", content },
            { role: "user", content: "make it night" },
          ],
        });
        assertEquals(res.status, 200, await res.clone().text());
        await res.body?.cancel();
        assertMatch(String(fake.received.at(-1)!.body.image), /^data:image\/png;base64,iVBOR/);
      });
      await t.step("the Images API's url format links to the store too", async () => {
        const res = await post(`${server.url}/v1/images/generations`, {
          model: "Qwen/Qwen-Image",
          prompt: "a boat",
        });
        assertMatch((await res.json()).data[0].url, /\/images\/[A-Za-z0-9_-]{22}\.png$/);
      });
      await t.step(
        "a large image with no declared length streams into the store whole",
        async () => {
          const origin = new URL(fake.baseUrl).origin;
          const size = 8 * 1024 * 1024 + 5;
          const answer = (url: string) => ({
            status: 200,
            body: JSON.stringify({ images: [{ url }], seed: 1 }),
          });
          fake.queue.push(answer(`${origin}/chunked/${size}.png`));
          const stored = LINK.exec(await chatImage(server.url))?.[1];
          assert(stored?.startsWith(`${server.url}/images/`), stored);
          assertEquals(new Uint8Array(await (await fetch(stored!)).arrayBuffer()), bigImage(size));
          // A download that breaks off keeps SiliconFlow's link, says so, and leaves no file.
          const before = [...Deno.readDirSync(root)].length;
          fake.queue.push(answer(`${origin}/broken/${size}.png`));
          const content = await chatImage(server.url);
          assertStringIncludes(content, `](${origin}/broken/${size}.png)`);
          assertStringIncludes(content, "could not be stored");
          assertEquals([...Deno.readDirSync(root)].length, before);
        },
      );
      await t.step("forwarded headers set the links' origin only with TRUST_PROXY", async () => {
        const forwarded = { "x-forwarded-host": "img.example.com", "x-forwarded-proto": "https" };
        const body = { model: "Qwen/Qwen-Image", prompt: "a boat" };
        const ignored = await post(`${server.url}/v1/images/generations`, body, {
          headers: forwarded,
        });
        assertMatch((await ignored.json()).data[0].url, new RegExp(`^${server.url}/images/`));
        await using trusting = startServer({
          SILICONFLOW_BASE_URL: fake.baseUrl,
          IMAGE_STORE: root,
          TRUST_PROXY: "true",
        });
        const res = await post(`${trusting.url}/v1/images/generations`, body, {
          headers: forwarded,
        });
        assertMatch((await res.json()).data[0].url, /^https:\/\/img\.example\.com\/images\//);
      });
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "PUBLIC_BASE_URL with a path: links under it, and a second turn edits one from the store",
  ...opts,
  async fn() {
    const root = await Deno.makeTempDir();
    await using fake = startFakeUpstream();
    await using server = startServer({
      SILICONFLOW_BASE_URL: fake.baseUrl,
      IMAGE_STORE: root,
      PUBLIC_BASE_URL: "https://Pictures.Example.test:443/sf/",
    });
    try {
      const content = await chatImage(server.url);
      assertMatch(content, /\(https:\/\/Pictures\.Example\.test:443\/sf\/images\/[\w-]{22}\.png\)/);
      const res = await post(`${server.url}/v1/chat/completions`, {
        model: "Qwen/Qwen-Image-Edit-2509",
        messages: [
          { role: "user", content: "a lighthouse" },
          {
            role: "assistant",
            content: content.replace("Pictures.Example.test:443", "pictures.example.test"),
          },
          { role: "user", content: "make it night" },
        ],
      });
      assertEquals(res.status, 200, await res.clone().text());
      await res.body?.cancel();
      assertMatch(String(fake.received.at(-1)!.body.image), /^data:image\/png;base64,iVBOR/);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "a store that fails (disk gone, S3 500) falls back to SiliconFlow's link and says so",
  ...opts,
  async fn() {
    const root = await Deno.makeTempDir();
    await using fake = startFakeUpstream();
    await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, IMAGE_STORE: root });
    // The folder becomes a file: every write fails, as on a full or broken disk.
    await Deno.remove(root, { recursive: true });
    await Deno.writeTextFile(root, "not a folder");
    try {
      const content = await chatImage(server.url);
      assertMatch(content, /\/demo\/images\//);
      assertStringIncludes(content, "could not be stored");
      const res = await post(`${server.url}/v1/images/generations`, {
        model: "Qwen/Qwen-Image",
        prompt: "a boat",
      });
      assertStringIncludes(res.headers.get("x-image-store-warning") ?? "", "could not be stored");
      assertMatch((await res.json()).data[0].url, /\/demo\/images\//);
    } finally {
      await Deno.remove(root);
    }
    const broken = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      await req.body?.cancel();
      return new Response("<Error><Code>InternalError</Code></Error>", { status: 500 });
    });
    try {
      await using s3 = startServer({
        SILICONFLOW_BASE_URL: fake.baseUrl,
        IMAGE_STORE: "s3://images/x",
        S3_ENDPOINT: `http://127.0.0.1:${broken.addr.port}`,
        S3_ACCESS_KEY_ID: "k",
        S3_SECRET_ACCESS_KEY: "secret-never-printed",
        S3_FORCE_PATH_STYLE: "true",
      });
      const started = Date.now();
      const content = await chatImage(s3.url);
      assert(Date.now() - started < 6_000, `${Date.now() - started} ms`);
      assertStringIncludes(content, "could not be stored");
      assert(!s3.lines.some((l) => l.includes("secret-never-printed")));
    } finally {
      await broken.shutdown();
    }
  },
});

Deno.test({
  name: "S3 store end to end: chat links served from the bucket (s3rver on loopback)",
  ...opts,
  async fn() {
    await using s3 = await startS3();
    const { port } = s3;
    await using fake = startFakeUpstream();
    await using server = startServer({
      SILICONFLOW_BASE_URL: fake.baseUrl,
      IMAGE_STORE: "s3://images/generated",
      S3_ENDPOINT: `http://127.0.0.1:${port}`,
      S3_ACCESS_KEY_ID: "S3RVER",
      S3_SECRET_ACCESS_KEY: "S3RVER",
      S3_FORCE_PATH_STYLE: "true",
    });
    const link = LINK.exec(await chatImage(server.url))?.[1];
    assert(link);
    fake.expired = true;
    const res = await fetch(link!);
    assertEquals([res.status, res.headers.get("content-type")], [200, "image/png"]);
    assertEquals(new Uint8Array(await res.arrayBuffer())[1], 0x50);
  },
});

Deno.test({
  name:
    "S3 store: a stream goes up as a multipart upload, a part at a time; a broken one keeps nothing; a video lands in the bucket",
  ...opts,
  async fn() {
    await using s3 = await startS3();
    const { port } = s3;
    const { S3MediaStore, PART_BYTES } = await import("../lib/store/s3.ts");
    const options = {
      bucket: "images",
      prefix: "up/",
      endpoint: `http://127.0.0.1:${port}`,
      region: "us-east-1",
      accessKeyId: "S3RVER",
      secretAccessKey: "S3RVER",
      forcePathStyle: true,
    };
    const store = new S3MediaStore(options);
    // Two and a half parts, in 64 KiB chunks, the way a download arrives.
    const size = Math.floor(PART_BYTES * 2.5);
    const bytes = bigImage(size);
    const chunks = (data: Uint8Array, breakAt = Infinity) => {
      let at = 0;
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (at >= breakAt) return controller.error(new Error("broke off"));
          if (at >= data.length) return controller.close();
          controller.enqueue(data.slice(at, at + 65536));
          at += 65536;
        },
      });
    };
    await using fake = startFakeUpstream();
    const name = await store.putStream(chunks(bytes), "video/mp4");
    const got = await store.get(name);
    assertEquals(got?.size, size);
    const back = await new Response(got!.body).bytes();
    assertEquals(back.length, size);
    assertEquals(back.slice(size - 100), bytes.slice(size - 100));
    // A small stream is one PUT.
    const small = await store.putStream(chunks(bytes.slice(0, 1000)), "image/png");
    assertEquals((await store.get(small))?.size, 1000);
    // A stream that breaks after the first part keeps nothing (the upload is aborted).
    const before = [];
    for await (const entry of store.list()) before.push(entry.name);
    let failed = "";
    await store.putStream(chunks(bytes, PART_BYTES + 65536), "video/mp4").catch((err) =>
      failed = err.message
    );
    assertEquals(failed, "broke off");
    const after = [];
    for await (const entry of store.list()) after.push(entry.name);
    assertEquals(after.sort(), before.sort());

    // End to end: a finished video is streamed from the download into the bucket.
    await using server = startServer({
      SILICONFLOW_BASE_URL: fake.baseUrl,
      KV_PATH: ":memory:",
      VIDEO_POLL_MS: "100",
      IMAGE_STORE: "s3://images/videos",
      S3_ENDPOINT: options.endpoint,
      S3_ACCESS_KEY_ID: "S3RVER",
      S3_SECRET_ACCESS_KEY: "S3RVER",
      S3_FORCE_PATH_STYLE: "true",
    });
    fake.slowVideos = { count: 1, ms: 200 }; // no declared length: it streams
    const created = await (await post(`${server.url}/v1/videos`, { prompt: "to the bucket" }))
      .json();
    let video = created;
    for (let i = 0; i < 100 && video.status !== "completed"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      video = await (await fetch(`${server.url}/v1/videos/${created.id}`, {
        headers: { authorization: `Bearer ${TEST_KEY}` },
      })).json();
    }
    assertEquals(video.status, "completed");
    fake.expired = true; // served from the bucket, not SiliconFlow's link
    const content = await fetch(`${server.url}/v1/videos/${created.id}/content`, {
      headers: { authorization: `Bearer ${TEST_KEY}` },
    });
    assertEquals([content.status, content.headers.get("content-type")], [200, "video/mp4"]);
    assertEquals(new TextDecoder().decode((await content.bytes()).slice(4, 8)), "ftyp");
  },
});
