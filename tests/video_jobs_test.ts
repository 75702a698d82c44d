/**
 * Video jobs that last, with `main.ts` as it runs: a restart in the middle of a job (SIGTERM hands
 * it over at once, SIGKILL within the heartbeat's life), a crash in the middle of storing one (no
 * truncated file is ever served, the partial file is gone after start-up), one slow download that
 * holds up no other job, two processes on one KV file (one polls and collects a job, once), a job
 * paid with the client's own key, and one that ends at its deadline with nobody asking.
 */
import { assert, assertEquals } from "@std/assert";
import { startFakeUpstream } from "./_helpers.ts";
import {
  auth,
  createVideo,
  filesIn,
  retrieveVideo,
  spawnIn,
  until,
  untilDone,
  videoEnv,
} from "./_videos.ts";

const opts = {};
const KEY_A = "sk-server-aaaaaaaaaaaaaaaaaaaa";
const KEY_B = "sk-server-bbbbbbbbbbbbbbbbbbbb";

const polledBy = (fake: { statusCalls: { authorization: string | null }[] }, key: string) =>
  fake.statusCalls.filter((c) => c.authorization === `Bearer ${key}`).length;

const mp4s = (dir: string) => filesIn(`${dir}/images`).filter((n) => n.endsWith(".mp4"));

Deno.test(
  "video jobs: SIGTERM hands a job over at once (not when a lease lapses); the next process finishes and stores it",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const dir = await Deno.makeTempDir();
    fake.videoMs = 8_000; // past the first process's first check, at 5 s
    // The defaults: a heartbeat lives 15 s, so only a hand-over explains a take-over in seconds.
    const env = (key: string) => videoEnv(fake, dir, key, { VIDEO_POLL_MS: "5000" });
    const first = await spawnIn(dir, env(KEY_A));
    const job = await createVideo(first.url, "handed over");
    await until("the first process polled", () => polledBy(fake, KEY_A) >= 1, 15_000);
    assertEquals((await first.stop("SIGTERM")).code, 0);
    const second = await spawnIn(dir, env(KEY_B));
    const started = Date.now();
    try {
      await until("the second process polls", () => polledBy(fake, KEY_B) >= 1, 8_000);
      assert(Date.now() - started < 8_000);
      const done = await untilDone(second.url, job.id, 20_000);
      assertEquals(done.status, "completed");
      assertEquals(mp4s(dir).length, 1);
    } finally {
      await second.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "video jobs: after a SIGKILL the next process takes the job over within the heartbeat's life and a scan",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const dir = await Deno.makeTempDir();
    fake.videoMs = 2_500;
    // VIDEO_POLL_MS 1 s: a heartbeat of 3 s, scans every 2 s, so a take-over within 5 s.
    const env = (key: string) => videoEnv(fake, dir, key, { VIDEO_POLL_MS: "1000" });
    const first = await spawnIn(dir, env(KEY_A));
    const job = await createVideo(first.url, "survives a crash");
    assertEquals((await retrieveVideo(first.url, job.id)).status, "queued");
    await first.stop("SIGKILL");
    const killed = Date.now();
    const second = await spawnIn(dir, env(KEY_B));
    try {
      await until("the second process polls", () => polledBy(fake, KEY_B) >= 1, 15_000);
      const tookMs = Date.now() - killed;
      assert(tookMs < 15_000, `took over after ${tookMs} ms`);
      const done = await untilDone(second.url, job.id, 15_000);
      assertEquals(done.status, "completed");
      const content = await fetch(`${second.url}/v1/videos/${job.id}/content`, { headers: auth });
      assertEquals(content.headers.get("content-type"), "video/mp4");
      assertEquals(new TextDecoder().decode((await content.bytes()).slice(4, 8)), "ftyp");
      assertEquals(mp4s(dir).length, 1);
    } finally {
      await second.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "video jobs: SIGKILL while a video streams into the store: nothing truncated is ever served, the partial file is gone after start-up",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const dir = await Deno.makeTempDir();
    fake.slowVideos = { count: 1, ms: 20_000 };
    const first = await spawnIn(dir, videoEnv(fake, dir, KEY_A));
    const job = await createVideo(first.url, "stored twice? never");
    const partial = await until(
      "a partial file with bytes in it",
      () =>
        filesIn(`${dir}/images`).find((n) =>
          n.endsWith(".partial") && Deno.statSync(`${dir}/images/${n}`).size > 0
        ),
      15_000,
    );
    await first.stop("SIGKILL");
    // Under a name the store serves there is nothing: the half-written file is only the partial.
    assertEquals(mp4s(dir), []);
    assert(filesIn(`${dir}/images`).includes(partial));
    const second = await spawnIn(dir, videoEnv(fake, dir, KEY_B));
    try {
      await until(
        "the partial file removed at start-up",
        () => !filesIn(`${dir}/images`).some((n) => n.endsWith(".partial")),
        5_000,
      );
      const done = await untilDone(second.url, job.id, 15_000);
      assertEquals(done.status, "completed");
      const stored = mp4s(dir);
      assertEquals(stored.length, 1);
      // Whole: the same bytes the fake serves.
      const original = await (await fetch(new URL(fake.videoDownloads.at(-1)!, fake.baseUrl)))
        .bytes();
      const content = await fetch(`${second.url}/v1/videos/${job.id}/content`, { headers: auth });
      assertEquals((await content.bytes()).length, original.length);
      assertEquals(Deno.statSync(`${dir}/images/${stored[0]}`).size, original.length);
    } finally {
      await second.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "video jobs: SIGTERM while a video streams into the store: the download stops, its partial file goes, the next process stores it once",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const dir = await Deno.makeTempDir();
    fake.slowVideos = { count: 1, ms: 20_000 };
    const first = await spawnIn(dir, videoEnv(fake, dir, KEY_A));
    const job = await createVideo(first.url, "stopped mid-copy");
    await until(
      "a partial file",
      () => filesIn(`${dir}/images`).some((n) => n.endsWith(".partial")),
      15_000,
    );
    const stopping = Date.now();
    assertEquals((await first.stop("SIGTERM")).code, 0);
    // The 20 s download was cut short, not waited for, and left nothing behind.
    assert(Date.now() - stopping < 10_000, `stopped after ${Date.now() - stopping} ms`);
    assertEquals(filesIn(`${dir}/images`), []);
    const second = await spawnIn(dir, videoEnv(fake, dir, KEY_B));
    try {
      assertEquals((await untilDone(second.url, job.id, 15_000)).status, "completed");
      assertEquals(mp4s(dir).length, 1);
    } finally {
      await second.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "video jobs: a download slowed to 20 s holds up no other job; each is collected once",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const dir = await Deno.makeTempDir();
    fake.slowVideos = { count: 1, ms: 20_000 };
    const server = await spawnIn(dir, videoEnv(fake, dir, KEY_A));
    try {
      const slow = await createVideo(server.url, "the slow one");
      await until("the slow download started", () => fake.videoDownloads.length >= 1, 10_000);
      const others = [
        await createVideo(server.url, "quick one"),
        await createVideo(server.url, "quick two"),
      ];
      for (const job of others) {
        assertEquals((await untilDone(server.url, job.id, 10_000)).status, "completed");
      }
      assertEquals((await retrieveVideo(server.url, slow.id)).status, "in_progress");
      assertEquals((await untilDone(server.url, slow.id, 40_000)).status, "completed");
      assertEquals(fake.videoDownloads.length, 3);
      assertEquals(mp4s(dir).length, 3);
    } finally {
      await server.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "video jobs: two processes on one KV file answer for one job; one of them polls and collects it, once",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const dir = await Deno.makeTempDir();
    fake.videoMs = 1_500;
    fake.slowVideos = { count: 1, ms: 3_000 };
    // Each process has its own server key, so the fake can tell which one polled.
    const a = await spawnIn(dir, videoEnv(fake, dir, KEY_A));
    const b = await spawnIn(dir, videoEnv(fake, dir, KEY_B));
    try {
      const job = await createVideo(a.url, "seen from both");
      const fromB = await retrieveVideo(b.url, job.id);
      assertEquals([fromB.id, fromB.prompt], [job.id, "seen from both"]);
      const done = await untilDone(b.url, job.id, 15_000);
      assertEquals(done.status, "completed");
      assertEquals((await retrieveVideo(a.url, job.id)).status, "completed");
      const pollers = new Set(fake.statusCalls.map((c) => c.authorization));
      assertEquals([...pollers], [`Bearer ${KEY_A}`]);
      assertEquals(fake.videoDownloads.length, 1);
      assertEquals(mp4s(dir).length, 1);
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

/** A pass-through environment: the client's own key pays. */
function passThrough(fake: { baseUrl: string }, dir: string, extra: Record<string, string> = {}) {
  return {
    SILICONFLOW_BASE_URL: fake.baseUrl,
    KV_PATH: `${dir}/kv.sqlite3`,
    IMAGE_STORE: `${dir}/images`,
    VIDEO_POLL_MS: "150",
    ...extra,
  };
}

const OWN = {
  authorization: "Bearer sk-client-own-key-77777777777",
  "content-type": "application/json",
};

Deno.test(
  "video jobs on the client's own key: after a restart the job resumes when its owner asks",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const dir = await Deno.makeTempDir();
    fake.videoMs = 1_500;
    const first = await spawnIn(dir, passThrough(fake, dir));
    const job = await createVideo(first.url, "mine", OWN);
    await first.stop("SIGKILL");
    const second = await spawnIn(dir, passThrough(fake, dir));
    try {
      // The key was never stored: nothing polls the job until its owner asks with it.
      // (A negative needs a window: several scans' time, at 150 ms polls.)
      const polled = fake.statusCalls.length;
      await new Promise((r) => setTimeout(r, 1_500));
      assertEquals(fake.statusCalls.length, polled);
      await until("done once its owner asks", async () => {
        const video = await retrieveVideo(second.url, job.id, OWN);
        return video.status === "completed";
      }, 10_000);
      assert(fake.statusCalls.every((c) => c.authorization === OWN.authorization));
    } finally {
      await second.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "video jobs on the client's own key: after a restart, with nobody asking, the deadline ends it and its mark goes",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const dir = await Deno.makeTempDir();
    fake.videoMs = 60_000;
    const env = passThrough(fake, dir, { VIDEO_JOB_TIMEOUT_MS: "2000" });
    const first = await spawnIn(dir, env);
    const job = await createVideo(first.url, "abandoned", OWN);
    await first.stop("SIGKILL");
    const second = await spawnIn(dir, env);
    const kv = await Deno.openKv(`${dir}/kv.sqlite3`);
    try {
      const ended = await until("the job failed by a scan", async () => {
        const record = (await kv.get<{ status: string; error?: { code: string } }>([
          "video",
          job.id,
        ])).value;
        return record?.status === "failed" ? record : undefined;
      }, 10_000);
      assertEquals(ended.error?.code, "video_timeout");
      assertEquals((await kv.get(["video_pending", job.id])).versionstamp, null);
      assertEquals((await retrieveVideo(second.url, job.id, OWN)).status, "failed");
    } finally {
      kv.close();
      await second.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
);
