/**
 * Video: OpenAI's Videos API driven by the official SDK end to end against the fake SiliconFlow
 * (submit, status, the stored MP4 with ranges), another key's 404s, bad input that never reaches
 * SiliconFlow, the fake's faults (a failed job, a refused submit, a slow queue, lapsed links), chat
 * streaming and non-streamed, and a managed key's video quota.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import OpenAI, { toFile } from "openai";
import {
  PNG_DATA_URI,
  post,
  readSse,
  startFakeUpstream,
  startServer,
  TEST_KEY,
  until,
} from "./_helpers.ts";

const opts = {};
const OTHER_KEY = "sk-other-5555555555555555555555555";

function env(fake: { baseUrl: string }, extra: Record<string, string> = {}) {
  return {
    SILICONFLOW_BASE_URL: fake.baseUrl,
    KV_PATH: ":memory:",
    VIDEO_POLL_MS: "100",
    ...extra,
  };
}

/** The fake, a server with a store of its own in a temporary folder, and an SDK client of it. */
async function storedVideos() {
  const fake = startFakeUpstream();
  const store = await Deno.makeTempDir();
  const server = startServer(env(fake, { IMAGE_STORE: store }));
  const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1` });
  return {
    fake,
    store,
    server,
    client,
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      await fake[Symbol.asyncDispose]();
      await Deno.remove(store, { recursive: true });
    },
  };
}

async function waitUntilDone(client: OpenAI, id: string, tries = 100) {
  for (let i = 0; i < tries; i++) {
    const video = await client.videos.retrieve(id);
    if (video.status === "completed" || video.status === "failed") return video;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the video never finished");
}

Deno.test(
  "Videos API through the openai SDK: create, poll, download (with ranges), list, delete",
  opts,
  async () => {
    await using stored = await storedVideos();
    const { fake, store, server, client } = stored;

    const video = await client.videos.create({
      model: "sora-2",
      prompt: "a lighthouse at dusk",
      size: "1024x1792",
      seconds: "8",
    });
    assertEquals([video.object, video.status, video.progress], ["video", "queued", 0]);
    assertEquals([video.size, video.seconds, video.model], ["720x1280", "5", "sora-2"]);
    assertMatch(video.id, /^video_/);
    const submit = fake.received.at(-1)!;
    assertEquals(submit.path, "/v1/video/submit");
    assertEquals(submit.body.model, "Wan-AI/Wan2.2-T2V-A14B");
    assertEquals(submit.body.image_size, "720x1280");

    const done = await waitUntilDone(client, video.id);
    assertEquals([done.status, done.progress, done.error], ["completed", 100, null]);
    assert(done.completed_at && done.expires_at && done.expires_at > done.completed_at);

    const content = await client.videos.downloadContent(video.id);
    const bytes = new Uint8Array(await content.arrayBuffer());
    assertEquals(content.headers.get("content-type"), "video/mp4");
    assertEquals(new TextDecoder().decode(bytes.slice(4, 8)), "ftyp");
    // The copy is in the store: it outlives SiliconFlow's link.
    fake.expired = true;
    const auth = { authorization: `Bearer ${TEST_KEY}` };
    const ranged = await fetch(`${server.url}/v1/videos/${video.id}/content`, {
      headers: { ...auth, range: "bytes=0-99" },
    });
    assertEquals(ranged.status, 206);
    assertEquals((await ranged.bytes()).length, 100);
    const etag = ranged.headers.get("etag")!;
    const cached = await fetch(`${server.url}/v1/videos/${video.id}/content`, {
      headers: { ...auth, "if-none-match": etag },
    });
    assertEquals(cached.status, 304);
    await cached.body?.cancel();
    const head = await fetch(`${server.url}/v1/videos/${video.id}/content`, {
      method: "HEAD",
      headers: auth,
    });
    assertEquals([head.status, head.headers.get("content-length")], [200, String(bytes.length)]);
    const thumb = await fetch(`${server.url}/v1/videos/${video.id}/content?variant=thumbnail`, {
      headers: auth,
    });
    assertEquals([thumb.status, (await thumb.json()).error.param], [404, "variant"]);

    const second = await client.videos.create({ prompt: "a second one" });
    const page = await client.videos.list({ limit: 1 });
    assertEquals(page.data.map((v) => v.id), [second.id]);
    assertEquals(page.has_more, true);
    const all: string[] = [];
    for await (const v of client.videos.list({ limit: 1 })) all.push(v.id);
    assertEquals(all, [second.id, video.id]);
    const oldest = await client.videos.list({ order: "asc" });
    assertEquals(oldest.data.map((v) => v.id), [video.id, second.id]);

    const deleted = await client.videos.delete(video.id);
    assertEquals(deleted, { id: video.id, object: "video.deleted", deleted: true });
    const gone = await client.videos.retrieve(video.id).catch((e) => e);
    assertEquals(gone.status, 404);
    assertEquals([...Deno.readDirSync(store)].filter((e) => e.name.endsWith(".mp4")).length, 0);
    await waitUntilDone(client, second.id);
  },
);

Deno.test(
  "Videos API: a first frame picks image to video; another key sees none of the jobs",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    await using server = startServer(env(fake));
    const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1` });
    const png = Uint8Array.fromBase64(PNG_DATA_URI.split(",")[1]);
    const file = await toFile(png, "frame.png", { type: "image/png" });
    const video = await client.videos.create({
      prompt: "it starts to rain",
      input_reference: file,
    });
    const submit = fake.received.at(-1)!;
    assertEquals(submit.body.model, "Wan-AI/Wan2.2-I2V-A14B");
    assertStringIncludes(String(submit.body.image), "data:image/png;base64,");
    const byUrl = await client.videos.create({
      prompt: "it snows",
      input_reference: { image_url: PNG_DATA_URI },
    });
    assertEquals(fake.received.at(-1)!.body.model, "Wan-AI/Wan2.2-I2V-A14B");

    const other = new OpenAI({ apiKey: OTHER_KEY, baseURL: `${server.url}/v1` });
    for (
      const attempt of [
        () => other.videos.retrieve(video.id),
        () => other.videos.delete(video.id),
        () => other.videos.downloadContent(video.id),
      ]
    ) {
      const err = await attempt().catch((e) => e);
      assertEquals(err.status, 404);
    }
    assertEquals((await other.videos.list()).data, []);
    assertEquals((await client.videos.list()).data.map((v) => v.id), [byUrl.id, video.id]);
    await waitUntilDone(client, video.id);
    await waitUntilDone(client, byUrl.id);
  },
);

Deno.test(
  "Videos API: bad input is a 400 naming the field, and never reaches SiliconFlow",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    await using server = startServer(env(fake));
    const cases: [Record<string, unknown>, string][] = [
      [{ prompt: "   " }, "prompt"],
      [{}, "prompt"],
      [{ prompt: "x", model: "Wan-AI/Wan2.2-I2V-A14B" }, "input_reference"],
      [{ prompt: "x", size: "big" }, "size"],
      [{ prompt: "x", image_size: "1024x1024" }, "image_size"],
      [{ prompt: "x", seed: -1 }, "seed"],
      [{ prompt: "x", input_reference: "file:///etc/passwd" }, "input_reference"],
      [{ prompt: "x", model: "Qwen/Qwen-Image" }, "model"],
    ];
    for (const [body, param] of cases) {
      const res = await post(`${server.url}/v1/videos`, body);
      const json = await res.json();
      assertEquals([res.status, json.error.param], [400, param], JSON.stringify(body));
    }
    const blank = await post(`${server.url}/v1/videos`, { prompt: " " });
    assertEquals(
      (await blank.json()).error.message.split(" (")[0],
      "A prompt is required: describe the video to make.",
    );
    const unknown = await post(`${server.url}/v1/videos`, { prompt: "x", model: "veo-9" });
    assertEquals([unknown.status, (await unknown.json()).error.code], [404, "model_not_found"]);
    // A video model in the Images API is told where to go.
    const image = await post(`${server.url}/v1/images/generations`, {
      prompt: "x",
      model: "Wan-AI/Wan2.2-T2V-A14B",
    });
    assertEquals([image.status, (await image.json()).error.param], [400, "model"]);
    assertEquals(fake.received.length, 0);
    // Fields a model does not take are named, not refused.
    const lenient = await post(`${server.url}/v1/videos`, {
      prompt: "x",
      model: "Wan-AI/Wan2.2-T2V-A14B",
      seconds: 12,
      input_reference: PNG_DATA_URI,
      num_inference_steps: 30,
    });
    assertEquals(lenient.status, 200);
    assertEquals(
      lenient.headers.get("x-ignored-params"),
      "input_reference, seconds, num_inference_steps",
    );
    assertEquals("image" in fake.received.at(-1)!.body, false);
    // Without /v1, as some clients call, the Videos API still answers.
    const bare = await fetch(`${server.url}/videos/video_nope`, {
      headers: { authorization: `Bearer ${TEST_KEY}` },
    });
    assertEquals((await bare.json()).error.code, "video_not_found");
    const bad = await fetch(`${server.url}/v1/videos/video_nope`, {
      headers: { authorization: `Bearer ${TEST_KEY}` },
    });
    assertEquals(bad.status, 404);
    await bad.body?.cancel();
  },
);

Deno.test(
  "Videos API: a failed job, a refused submit, a slow queue, and a lapsed link without a store",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    await using server = startServer(env(fake));
    const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });

    fake.videoFail = "content policy";
    const failing = await client.videos.create({ prompt: "x" });
    const failed = await waitUntilDone(client, failing.id);
    assertEquals(failed.status, "failed");
    assertEquals(failed.error?.code, "video_failed");
    assertStringIncludes(failed.error!.message, "content policy");
    const notThere = await client.videos.downloadContent(failing.id).catch((e) => e);
    assertEquals(notThere.status, 400);
    fake.videoFail = undefined;

    fake.queue.push({ status: 429, body: '{"code":50603,"message":"rate limited","data":null}' });
    const refused = await client.videos.create({ prompt: "x" }).catch((e) => e);
    assertEquals(refused.status, 429);
    assertEquals((await client.videos.list()).data.length, 1);

    fake.videoMs = 1_500;
    const slow = await client.videos.create({ prompt: "slow" });
    const status = async () => (await client.videos.retrieve(slow.id)).status;
    assertEquals(await status(), "queued");
    const early = await client.videos.downloadContent(slow.id).catch((e) => e);
    assertEquals(early.status, 409);
    await until("in progress", async () => (await status()) === "in_progress", 10_000);
    const done = await waitUntilDone(client, slow.id);
    // No store: the content is SiliconFlow's link, while it lives, and then a clear 410.
    assertEquals(done.expires_at! - done.completed_at!, 600);
    const live = await client.videos.downloadContent(slow.id);
    assertEquals(live.headers.get("content-type"), "video/mp4");
    await live.body?.cancel();
    fake.expired = true;
    const lapsed = await client.videos.downloadContent(slow.id).catch((e) => e);
    assertEquals(lapsed.status, 410);
  },
);

Deno.test(
  "video from chat: streamed with keep-alives and progress, then a link to the MP4; non-streamed says how to collect it",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const store = await Deno.makeTempDir();
    await using server = startServer(env(fake, {
      IMAGE_STORE: store,
      KEEPALIVE_MS: "200",
      PROGRESS: "reasoning",
      UPSTREAM_TIMEOUT_MS: "400",
    }));
    fake.videoMs = 1_200;
    const res = await post(`${server.url}/v1/chat/completions`, {
      model: "Wan-AI/Wan2.2-T2V-A14B",
      stream: true,
      messages: [{ role: "user", content: "a fox in the snow" }],
    });
    const events = (await readSse(res)).filter((e) => e !== "[DONE]").map((e) => JSON.parse(e));
    const reasoning = events.map((e) => e.choices?.[0]?.delta?.reasoning_content ?? "").join("");
    assertStringIncludes(reasoning, "Making a video with Wan-AI/Wan2.2-T2V-A14B");
    assertMatch(reasoning, /Still working… \d+ s \((queued|rendering)/);
    const content = events.map((e) => e.choices?.[0]?.delta?.content ?? "").join("");
    const link = /\]\((http[^)]+\.mp4)\)/.exec(content)?.[1];
    assert(link, content);
    assertStringIncludes(content, "video_");
    const mp4 = await fetch(link!);
    assertEquals(mp4.headers.get("content-type"), "video/mp4");
    await mp4.body?.cancel();

    // Non-streamed chat waits up to the upstream timeout, then says where the video will be.
    const waiting = await post(`${server.url}/v1/chat/completions`, {
      model: "sora-2",
      messages: [{ role: "user", content: "a slow one" }],
    });
    const text = (await waiting.json()).choices[0].message.content as string;
    assertStringIncludes(text, "still rendering");
    assertMatch(text, /GET \/v1\/videos\/video_[\w-]+\/content/);
    // Multi-turn: an image earlier in the conversation becomes the first frame.
    fake.videoMs = 100;
    const followUp = await post(`${server.url}/v1/chat/completions`, {
      model: "Wan-AI/Wan2.2-I2V-A14B",
      messages: [
        { role: "user", content: "a cat" },
        { role: "assistant", content: `![image](${PNG_DATA_URI})` },
        { role: "user", content: "make it move" },
      ],
    });
    assertEquals(followUp.status, 200, await followUp.clone().text());
    assertStringIncludes((await followUp.json()).choices[0].message.content, ".mp4");
    assertEquals(fake.received.at(-1)!.body.image, PNG_DATA_URI);
    await Deno.remove(store, { recursive: true });
  },
);

Deno.test(
  "videos on a managed key's quota: their own limit, given back when a job fails, usage by unit",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const ADMIN = "admin-secret-video-0123456789";
    await using server = startServer(env(fake, {
      SILICONFLOW_API_KEY: "sk-owner-video-11111111111111111",
      ADMIN_API_KEY: ADMIN,
    }));
    const made = await fetch(`${server.url}/admin/v1/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "video", images_per_day: 0, videos_per_day: 1 }),
    });
    assertEquals(made.status, 201);
    const { key } = await made.json();
    const client = new OpenAI({ apiKey: key, baseURL: `${server.url}/v1`, maxRetries: 0 });

    fake.videoFail = "busy";
    const failing = await client.videos.create({ prompt: "one" });
    assertEquals((await waitUntilDone(client, failing.id)).status, "failed");
    fake.videoFail = undefined;
    // The failed one was given back: one more fits, then the day's limit is reached.
    const video = await client.videos.create({ prompt: "two" });
    const over = await client.videos.create({ prompt: "three" }).catch((e) => e);
    assertEquals([over.status, over.code], [429, "quota_exceeded"]);
    assertStringIncludes(over.message, "limit of 1 videos");
    // Images have their own limit (0 here), untouched by videos.
    const image = await post(`${server.url}/v1/images/generations`, { prompt: "x" }, { key });
    assertEquals(image.status, 429);
    await image.body?.cancel();
    await waitUntilDone(client, video.id);

    const usage = await (await fetch(`${server.url}/v1/usage`, {
      headers: { authorization: `Bearer ${key}` },
    })).json();
    assertEquals(usage.limits.videos_per_day, 1);
    assertEquals(usage.remaining.videos_today, 0);
    assertEquals(usage.data, [{
      date: usage.data[0].date,
      model: "Wan-AI/Wan2.2-T2V-A14B",
      videos: 1,
    }]);
    const csv = await (await fetch(`${server.url}/admin/v1/usage?format=csv`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    })).text();
    assertStringIncludes(csv, ",Wan-AI/Wan2.2-T2V-A14B,videos,2,1,1\n");
  },
);

Deno.test("a video model in the Responses API: the answer links the MP4", opts, async () => {
  await using fake = startFakeUpstream();
  await using server = startServer(env(fake));
  const res = await post(`${server.url}/v1/responses`, { model: "sora-2", input: "a red kite" });
  assertEquals(res.status, 200);
  const body = await res.json();
  const text = body.output.at(-1).content[0].text as string;
  assertMatch(text, /\]\(http[^)]+\.mp4\)/);
  assertStringIncludes(text, "video_");
});

Deno.test(
  "a video job nobody will collect is given up at VIDEO_JOB_TIMEOUT_MS, and polling stops",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    await using server = startServer(env(fake, { VIDEO_JOB_TIMEOUT_MS: "1000" }));
    fake.videoMs = 60_000;
    const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1` });
    const video = await client.videos.create({ prompt: "never ready" });
    const ended = await waitUntilDone(client, video.id);
    assertEquals([ended.status, ended.error?.code], ["failed", "video_timeout"]);
    const polls = fake.statusCalls.length;
    await new Promise((r) => setTimeout(r, 500));
    assertEquals(fake.statusCalls.length, polls);
  },
);

Deno.test("demo mode makes a real, playable MP4 with no key", opts, async () => {
  await using server = startServer({ DEMO: "true", KV_PATH: ":memory:" });
  const client = new OpenAI({ apiKey: "unused", baseURL: `${server.url}/v1` });
  const video = await client.videos.create({ prompt: "a demo", size: "1792x1024" });
  const done = await waitUntilDone(client, video.id, 200);
  assertEquals([done.status, done.size], ["completed", "1280x720"]);
  const bytes = new Uint8Array(await (await client.videos.downloadContent(video.id)).arrayBuffer());
  const text = new TextDecoder("latin1").decode(bytes.slice(0, 4096));
  for (const box of ["ftyp", "moov", "avc1", "avcC"]) assertStringIncludes(text, box);
});

Deno.test(
  "a video whose copy into the store fails is answered with SiliconFlow's link at once, and copied on a later try while the link works",
  opts,
  async () => {
    await using stored = await storedVideos();
    const { fake, store, client } = stored;
    fake.failVideos = 1;
    const video = await client.videos.create({
      model: "sora-2",
      prompt: "stored on the second try",
    });
    const done = await waitUntilDone(client, video.id);
    assertEquals(done.status, "completed");
    const mp4s = () => [...Deno.readDirSync(store)].filter((e) => e.name.endsWith(".mp4"));
    assertEquals(mp4s().length, 0, "the first copy failed");
    assertEquals(fake.videoDownloads.length, 1);
    // Meanwhile /content passes SiliconFlow's link on.
    const meanwhile = await client.videos.downloadContent(video.id);
    assertEquals(meanwhile.headers.get("content-type"), "video/mp4");
    await meanwhile.body?.cancel();
    // The next try (5 s later) copies it; from then on it outlives SiliconFlow's link.
    for (let i = 0; i < 150 && mp4s().length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assertEquals(mp4s().length, 1);
    fake.expired = true;
    const kept = await client.videos.downloadContent(video.id);
    assertEquals(
      new TextDecoder().decode(new Uint8Array(await kept.arrayBuffer()).slice(4, 8)),
      "ftyp",
    );
  },
);
