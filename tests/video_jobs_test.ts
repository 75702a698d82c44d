/**
 * Video jobs that last, with `main.ts` as it runs: a restart in the middle of a job (the next
 * process picks up the polling and stores the video), and two processes on one KV file answering
 * for one job, with one of them polling it.
 */
import { assert, assertEquals } from "@std/assert";
import { startFakeUpstream } from "./_helpers.ts";
import { spawnMain } from "./_spawn.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const ACCESS = "access-key-video-0123456789";

function env(fake: { baseUrl: string }, dir: string, serverKey: string) {
  return {
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: serverKey,
    PROXY_API_KEYS: ACCESS,
    KV_PATH: `${dir}/kv.sqlite3`,
    IMAGE_STORE: `${dir}/images`,
    VIDEO_POLL_MS: "150",
  };
}

const permissions = (
  dir: string,
) => ["--unstable-kv", `--allow-read=${dir}`, `--allow-write=${dir}`];

const auth = { authorization: `Bearer ${ACCESS}`, "content-type": "application/json" };

async function create(url: string, prompt: string): Promise<{ id: string; status: string }> {
  const res = await fetch(`${url}/v1/videos`, {
    method: "POST",
    headers: auth,
    body: JSON.stringify({ prompt }),
  });
  assertEquals(res.status, 200);
  return await res.json();
}

async function retrieve(url: string, id: string) {
  const res = await fetch(`${url}/v1/videos/${id}`, { headers: auth });
  assertEquals(res.status, 200);
  return await res.json();
}

async function untilDone(url: string, id: string, withinMs: number) {
  const end = Date.now() + withinMs;
  while (Date.now() < end) {
    const video = await retrieve(url, id);
    if (video.status === "completed" || video.status === "failed") return video;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${id} did not finish within ${withinMs} ms`);
}

Deno.test(
  "video jobs: a restart in the middle of a job; the next process polls it to the end",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const dir = await Deno.makeTempDir();
    fake.videoMs = 2_500;
    const first = await spawnMain([], env(fake, dir, "sk-server-aaaaaaaaaaaaaaaaaaaa"), {
      permissions: permissions(dir),
    });
    const job = await create(first.url, "survives a restart");
    await new Promise((r) => setTimeout(r, 400));
    assertEquals((await retrieve(first.url, job.id)).status, "queued");
    await first.stop("SIGKILL");
    const polledBefore = fake.statusCalls.length;
    assert(polledBefore >= 1);

    const second = await spawnMain([], env(fake, dir, "sk-server-aaaaaaaaaaaaaaaaaaaa"), {
      permissions: permissions(dir),
    });
    try {
      const done = await untilDone(second.url, job.id, 10_000);
      assertEquals(done.status, "completed");
      assert(fake.statusCalls.length > polledBefore, "the second process polled");
      const content = await fetch(`${second.url}/v1/videos/${job.id}/content`, { headers: auth });
      assertEquals(content.headers.get("content-type"), "video/mp4");
      assertEquals(new TextDecoder().decode((await content.bytes()).slice(4, 8)), "ftyp");
      const stored = [...Deno.readDirSync(`${dir}/images`)].map((e) => e.name);
      assertEquals(stored.filter((n) => n.endsWith(".mp4")).length, 1);
    } finally {
      await second.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "video jobs: two processes on one KV file answer for one job, and one of them polls it",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const dir = await Deno.makeTempDir();
    fake.videoMs = 1_500;
    // Each process has its own server key, so the fake can tell which one polled.
    const a = await spawnMain([], env(fake, dir, "sk-server-aaaaaaaaaaaaaaaaaaaa"), {
      permissions: permissions(dir),
    });
    const b = await spawnMain([], env(fake, dir, "sk-server-bbbbbbbbbbbbbbbbbbbb"), {
      permissions: permissions(dir),
    });
    try {
      const job = await create(a.url, "seen from both");
      const fromB = await retrieve(b.url, job.id);
      assertEquals([fromB.id, fromB.prompt], [job.id, "seen from both"]);
      const done = await untilDone(b.url, job.id, 10_000);
      assertEquals(done.status, "completed");
      assertEquals((await retrieve(a.url, job.id)).status, "completed");
      const requestId = fake.received.find((r) => r.body.prompt === "seen from both")!;
      assert(requestId);
      const pollers = new Set(fake.statusCalls.map((c) => c.authorization));
      assertEquals([...pollers], ["Bearer sk-server-aaaaaaaaaaaaaaaaaaaa"]);
      const content = await fetch(`${b.url}/v1/videos/${job.id}/content`, { headers: auth });
      assertEquals(content.status, 200);
      await content.body?.cancel();
    } finally {
      await a.stop("SIGTERM");
      await b.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "video jobs on the client's own key: after a restart the job resumes when its owner asks",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const dir = await Deno.makeTempDir();
    fake.videoMs = 1_500;
    const passThrough = {
      SILICONFLOW_BASE_URL: fake.baseUrl,
      KV_PATH: `${dir}/kv.sqlite3`,
      IMAGE_STORE: `${dir}/images`,
      VIDEO_POLL_MS: "150",
    };
    const own = {
      authorization: "Bearer sk-client-own-key-77777777777",
      "content-type": "application/json",
    };
    const first = await spawnMain([], passThrough, { permissions: permissions(dir) });
    const res = await fetch(`${first.url}/v1/videos`, {
      method: "POST",
      headers: own,
      body: JSON.stringify({ prompt: "mine" }),
    });
    const job = await res.json();
    await first.stop("SIGKILL");
    const second = await spawnMain([], passThrough, { permissions: permissions(dir) });
    try {
      // The key was never stored: nothing polls the job until its owner asks with it.
      await new Promise((r) => setTimeout(r, 2_500));
      const polled = fake.statusCalls.length;
      await new Promise((r) => setTimeout(r, 500));
      assertEquals(fake.statusCalls.length, polled);
      let video = { status: "queued" };
      for (let i = 0; i < 60 && video.status !== "completed"; i++) {
        video = await (await fetch(`${second.url}/v1/videos/${job.id}`, { headers: own })).json();
        await new Promise((r) => setTimeout(r, 100));
      }
      assertEquals(video.status, "completed");
      assert(fake.statusCalls.every((c) => c.authorization === own.authorization));
    } finally {
      await second.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
);
