/**
 * `/v1/videos` in OpenRouter's and LobeHub's words beside OpenAI's, `GET /v1/videos/models`, a
 * clear 400 for OpenAI's operations SiliconFlow lacks, and signed `callback_url` webhooks (retried,
 * never to a private address unless allowed, delivered by the next process after a SIGKILL).
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { signWebhook } from "../lib/jobs/webhook.ts";
import { PNG_DATA_URI, post, startFakeUpstream, startServer, TEST_KEY, until } from "./_helpers.ts";
import { auth, spawnIn, untilDone, videoEnv } from "./_videos.ts";

const SECRET = "whsec_" + btoa("a test secret of thirty-two bytes");

/** A loopback receiver of webhooks: the next `failures` deliveries answer 500. */
function startReceiver(failures = 0) {
  const received: { headers: Headers; body: string }[] = [];
  const receiver = {
    url: "",
    received,
    failures,
    attempts: 0,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = await req.text();
    receiver.attempts++;
    if (receiver.failures > 0) {
      receiver.failures--;
      return new Response("not now", { status: 500 });
    }
    received.push({ headers: req.headers, body });
    return new Response(null, { status: 204 });
  });
  receiver.url = `http://127.0.0.1:${server.addr.port}/hooks/video?token=abc`;
  return receiver;
}

/** Checks a webhook's signature as a receiver would (Standard Webhooks); answers its event. */
async function verified(hook: { headers: Headers; body: string }) {
  const id = hook.headers.get("webhook-id")!;
  const timestamp = Number(hook.headers.get("webhook-timestamp"));
  assert(Math.abs(Date.now() / 1000 - timestamp) < 300, "a fresh timestamp");
  assertEquals(
    hook.headers.get("webhook-signature"),
    await signWebhook(SECRET, id, timestamp, hook.body),
  );
  // The same HMAC, computed here with the secret's base64 bytes, so the test does not only trust
  // the server's own signing code.
  const key = await crypto.subtle.importKey(
    "raw",
    Uint8Array.fromBase64(SECRET.slice(6)),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign(
    "HMAC",
    key,
    new TextEncoder().encode(`${id}.${timestamp}.${hook.body}`),
  );
  assertEquals(hook.headers.get("webhook-signature"), `v1,${new Uint8Array(mac).toBase64()}`);
  return JSON.parse(hook.body);
}

Deno.test("OpenRouter's video fields: first frame, ratio, and what cannot be honoured named", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const res = await post(`${server.url}/v1/videos`, {
    model: "sora-2",
    prompt: "a paper plane over a city",
    duration: 8,
    resolution: "1080p",
    aspect_ratio: "9:16",
    generate_audio: true,
    frame_images: [
      { type: "image_url", image_url: { url: PNG_DATA_URI }, frame_type: "first_frame" },
      { type: "image_url", image_url: { url: PNG_DATA_URI }, frame_type: "last_frame" },
    ],
    input_references: [{ type: "image_url", image_url: { url: PNG_DATA_URI } }],
  });
  const video = await res.json();
  assertEquals(res.status, 200, JSON.stringify(video));
  assertEquals(
    res.headers.get("x-ignored-params"),
    "frame_images[1].frame_type, input_references, generate_audio, duration, resolution",
  );
  const sent = fake.received.at(-1)!.body;
  assertEquals([sent.model, sent.image_size, sent.image], [
    "Wan-AI/Wan2.2-I2V-A14B",
    "720x1280",
    PNG_DATA_URI,
  ]);
  assertEquals(video.polling_url, `${server.url}/v1/videos/${video.id}`);
  // 720p and 5 seconds are what Wan 2.2 makes: nothing to name.
  const plain = await post(`${server.url}/v1/videos`, {
    prompt: "waves",
    duration: 5,
    resolution: "720p",
  });
  assertEquals([plain.status, plain.headers.get("x-ignored-params")], [200, null]);
  await plain.body?.cancel();
  const both = await post(`${server.url}/v1/videos`, {
    prompt: "waves",
    input_reference: PNG_DATA_URI,
    frame_images: [{ type: "image_url", image_url: { url: PNG_DATA_URI } }],
  });
  assertEquals([both.status, (await both.json()).error.param], [400, "frame_images"]);
});

Deno.test("LobeHub's video client: JSON submit, poll, read url, download it", async () => {
  await using fake = startFakeUpstream();
  const store = await Deno.makeTempDir();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    IMAGE_STORE: store,
    VIDEO_POLL_MS: "100",
  });
  // What packages/model-runtime/src/core/openaiCompatibleFactory/createVideo.ts does.
  const headers = { authorization: `Bearer ${TEST_KEY}`, "content-type": "application/json" };
  const submit = await fetch(`${server.url}/v1/videos`, {
    method: "POST",
    headers,
    body: JSON.stringify({
      model: "Wan-AI/Wan2.2-I2V-A14B",
      prompt: "the cat turns its head",
      seconds: "5",
      size: "1280x720",
      input_reference: { image_url: PNG_DATA_URI },
    }),
  });
  const { id } = await submit.json();
  assertEquals(submit.status, 200);
  const done = await until("the video is done", async () => {
    const status = await (await fetch(`${server.url}/v1/videos/${id}`, { headers })).json();
    return status.status === "completed" ? status : undefined;
  }, 20_000);
  assertMatch(done.url, /^http:\/\/127\.0\.0\.1:\d+\/videos\/[\w-]{22}\.mp4$/);
  assertEquals(done.urls, [done.url]);
  const mp4 = await fetch(done.url);
  assertEquals(mp4.headers.get("content-type"), "video/mp4");
  assertEquals(new TextDecoder().decode((await mp4.bytes()).slice(4, 8)), "ftyp");
  await Deno.remove(store, { recursive: true });
});

Deno.test("GET /v1/videos/models, and OpenAI's video operations SiliconFlow lacks", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const headers = { authorization: `Bearer ${TEST_KEY}` };
  const list = await (await fetch(`${server.url}/v1/videos/models`, { headers })).json();
  const byId = Object.fromEntries(
    list.data.map((m: { id: string }) => [m.id, m]),
  );
  assertEquals(byId["Wan-AI/Wan2.2-T2V-A14B"].supported_aspect_ratios, ["16:9", "9:16", "1:1"]);
  assertEquals(byId["Wan-AI/Wan2.2-T2V-A14B"].supported_frame_images, []);
  assertEquals(byId["Wan-AI/Wan2.2-I2V-A14B"].supported_frame_images, ["first_frame"]);
  assertEquals(byId["sora-2"].supported_durations, [5]);
  assertEquals(byId["sora-2"].supported_resolutions, ["720p"]);
  assertEquals(byId["Qwen/Qwen-Image"], undefined);
  for (
    const [method, path] of [
      ["POST", "/v1/videos/video_abc/remix"],
      ["POST", "/v1/videos/edits"],
      ["POST", "/v1/videos/extensions"],
      ["POST", "/v1/videos/characters"],
      ["GET", "/v1/videos/characters/char_1"],
    ]
  ) {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { ...headers, "content-type": "application/json" },
      body: method === "POST" ? JSON.stringify({ prompt: "again" }) : undefined,
    });
    const { error } = await res.json();
    assertEquals([res.status, error.code], [400, "unsupported_operation"], path);
    assertMatch(error.message, /^SiliconFlow has no video (remix|edits|extensions|characters)/);
  }
});

Deno.test("callback_url: a signed webhook when a video ends, tried again after a failure", async () => {
  await using fake = startFakeUpstream();
  await using receiver = startReceiver(1);
  const store = await Deno.makeTempDir();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    IMAGE_STORE: store,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_ALLOW_PRIVATE: "true",
    VIDEO_POLL_MS: "100",
  });
  const res = await post(`${server.url}/v1/videos`, {
    prompt: "a kite",
    callback_url: receiver.url,
  });
  const video = await res.json();
  assertEquals(res.status, 200, JSON.stringify(video));
  await until("the webhook arrives", () => receiver.received.length > 0, 20_000);
  const event = await verified(receiver.received[0]);
  assertEquals([event.type, event.id, event.data.id], [
    "video.completed",
    `evt_${video.id}`,
    video.id,
  ]);
  assertMatch(event.data.url, /\/videos\/[\w-]{22}\.mp4$/);
  assertEquals((await fetch(event.data.url)).headers.get("content-type"), "video/mp4");
  // A video that fails says so too.
  fake.videoFail = "content policy";
  const failing = await (await post(`${server.url}/v1/videos`, {
    prompt: "another",
    callback_url: receiver.url,
  })).json();
  await until("the failure's webhook", () => receiver.received.length > 1, 20_000);
  const failed = await verified(receiver.received[1]);
  assertEquals([failed.type, failed.data.id], ["video.failed", failing.id]);
  assertMatch(failed.data.error.message, /content policy/);
  assertEquals(receiver.received.length, 2, "each webhook delivered once");
  assert(!server.lines.some((l) => l.includes("token=abc")), "the callback URL is never logged");
  await Deno.remove(store, { recursive: true });
});

Deno.test("callback_url: never to a private address unless allowed; ignored without a secret", async () => {
  await using fake = startFakeUpstream();
  await using guarded = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, WEBHOOK_SECRET: SECRET });
  for (
    const url of [
      "http://127.0.0.1:9/x",
      "http://localhost/x",
      "http://10.1.2.3/x",
      "http://[::1]/x",
      "http://169.254.169.254/latest",
      "http://192.168.1.1/",
      "ftp://example.com/x",
      "http://user:pw@example.com/x",
    ]
  ) {
    const res = await post(`${guarded.url}/v1/videos`, { prompt: "a", callback_url: url });
    const { error } = await res.json();
    assertEquals([res.status, error.param, error.code], [
      400,
      "callback_url",
      "invalid_callback_url",
    ], url);
  }
  assertEquals(fake.received.length, 0, "nothing was submitted");
  await using plain = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const res = await post(`${plain.url}/v1/videos`, {
    prompt: "a",
    callback_url: "http://127.0.0.1:9/x",
  });
  assertEquals([res.status, res.headers.get("x-ignored-params")], [200, "callback_url"]);
  await res.body?.cancel();
});

Deno.test("callback_url on an async image task", async () => {
  await using fake = startFakeUpstream();
  await using receiver = startReceiver();
  const store = await Deno.makeTempDir();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    IMAGE_STORE: store,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_ALLOW_PRIVATE: "true",
  });
  const res = await post(`${server.url}/v1/images/generations/async`, {
    model: "Qwen/Qwen-Image",
    prompt: "a lantern",
    callback_url: receiver.url,
  });
  const task = await res.json();
  assertEquals(res.status, 202, JSON.stringify(task));
  await until("the task's webhook", () => receiver.received.length > 0, 20_000);
  const event = await verified(receiver.received[0]);
  assertEquals([event.type, event.data.id, event.data.status], [
    "image.task.completed",
    task.id,
    "completed",
  ]);
  assertMatch(event.data.result.data[0].url, /\/images\/[\w-]+\.png$/);
  await Deno.remove(store, { recursive: true });
});

for (const signal of ["SIGKILL", "SIGTERM"] as const) {
  Deno.test(`callback_url: after a ${signal} the next process delivers the webhook`, async () => {
    await using fake = startFakeUpstream();
    // It refuses until the first process is gone.
    await using receiver = startReceiver(1_000);
    const dir = await Deno.makeTempDir();
    const env = videoEnv(fake, dir, TEST_KEY, {
      VIDEO_POLL_MS: "300",
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_ALLOW_PRIVATE: "true",
    });
    const first = await spawnIn(dir, env);
    const res = await fetch(`${first.url}/v1/videos`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ prompt: "a crash", callback_url: receiver.url }),
    });
    const video = await res.json();
    assertEquals(res.status, 200, JSON.stringify(video));
    await until("a first delivery fails", () => receiver.attempts > 0, 20_000);
    await first.stop(signal);
    receiver.failures = 0;
    const second = await spawnIn(dir, env);
    try {
      await until("the second process delivers", () => receiver.received.length > 0, 30_000);
      const event = await verified(receiver.received[0]);
      assertEquals([event.type, event.data.id], ["video.completed", video.id]);
      assertEquals((await untilDone(second.url, video.id, 5_000)).status, "completed");
    } finally {
      await second.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
    assertEquals(receiver.received.length, 1);
  });
}

Deno.test("callback_url: two instances on one KV send a video's webhook once", async () => {
  await using fake = startFakeUpstream();
  await using receiver = startReceiver();
  const dir = await Deno.makeTempDir();
  const env = videoEnv(fake, dir, TEST_KEY, {
    VIDEO_POLL_MS: "200",
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_ALLOW_PRIVATE: "true",
  });
  const [a, b] = [await spawnIn(dir, env), await spawnIn(dir, env)];
  try {
    const res = await fetch(`${a.url}/v1/videos`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ prompt: "two of us", callback_url: receiver.url }),
    });
    const video = await res.json();
    assertEquals(res.status, 200, JSON.stringify(video));
    await until("the webhook arrives", () => receiver.received.length > 0, 30_000);
    assertEquals((await untilDone(b.url, video.id, 5_000)).status, "completed");
    // A negative: a few scans of both instances, and no second delivery.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    assertEquals(receiver.received.length, 1);
    assertEquals(receiver.attempts, 1);
  } finally {
    await a.stop("SIGTERM");
    await b.stop("SIGTERM");
    await Deno.remove(dir, { recursive: true });
  }
});
