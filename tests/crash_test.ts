/**
 * A crash costs a managed key nothing it did not get, with `main.ts` as it runs: the images
 * reserved by requests in flight when the process was killed, and a video whose submit never
 * came back, are given back by the next process (within a heartbeat's life and a scan).
 */
import { assertEquals } from "@std/assert";
import { startFakeUpstream } from "./_helpers.ts";
import { spawnIn, until, untilDone } from "./_videos.ts";

const opts = {};
const ADMIN = "admin-secret-crash-0123456789";
const OWNER = "sk-owner-crash-1111111111111111";

function env(fake: { baseUrl: string }, dir: string, upstreamTimeoutMs = 120_000) {
  return {
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: OWNER,
    ADMIN_API_KEY: ADMIN,
    KV_PATH: `${dir}/kv.sqlite3`,
    IMAGE_STORE: "none",
    // A heartbeat of 3 s, scans every 2 s.
    VIDEO_POLL_MS: "1000",
    // Long enough that only a crash ends a call; a job never submitted is failed after 2× it.
    UPSTREAM_TIMEOUT_MS: String(upstreamTimeoutMs),
  };
}

async function newKey(url: string, fields: Record<string, unknown>) {
  const res = await fetch(`${url}/admin/v1/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify(fields),
  });
  const body = await res.json();
  assertEquals(res.status, 201, JSON.stringify(body));
  return body.key as string;
}

async function remaining(url: string, key: string) {
  const res = await fetch(`${url}/v1/usage`, { headers: { authorization: `Bearer ${key}` } });
  const body = await res.json();
  assertEquals(res.status, 200, JSON.stringify(body));
  return body.remaining as { today: number; videos_today: number };
}

for (const signal of ["SIGKILL", "SIGTERM"] as const) {
  Deno.test(
    `${signal} with three images in flight: the quota is whole again in the next process`,
    opts,
    async () => {
      await using fake = startFakeUpstream();
      const dir = await Deno.makeTempDir();
      // SIGTERM: the generations are cut when the grace runs out, and settle before the exit.
      const withGrace = { ...env(fake, dir), SHUTDOWN_GRACE_MS: "500" };
      const first = await spawnIn(dir, withGrace);
      const key = await newKey(first.url, { name: "crash", images_per_day: 10 });
      fake.delayMs = 60_000; // SiliconFlow never answers before the stop
      const inFlight = [1, 2, 3].map((i) =>
        fetch(`${first.url}/v1/images/generations`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body: JSON.stringify({ model: "Qwen/Qwen-Image", prompt: `in flight ${i}` }),
        }).then((res) => res.body?.cancel(), () => {})
      );
      await until("three calls at SiliconFlow", () => fake.inFlight() === 3, 10_000);
      assertEquals((await remaining(first.url, key)).today, 7);
      await first.stop(signal);
      await Promise.all(inFlight);
      fake.delayMs = 0;
      const second = await spawnIn(dir, withGrace);
      try {
        if (signal === "SIGTERM") {
          // Settled by the process itself: whole at once, with no recovery to wait for.
          assertEquals((await remaining(second.url, key)).today, 10);
        }
        // After a SIGKILL, recovered once the dead process's heartbeat lapsed.
        await until(
          "the quota whole again",
          async () => (await remaining(second.url, key)).today === 10,
          15_000,
        );
      } finally {
        await second.stop("SIGTERM");
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}

Deno.test(
  "a crash while SiliconFlow takes a video: the job (kept before the submit) ends failed, and the video is given back",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    const dir = await Deno.makeTempDir();
    const first = await spawnIn(dir, env(fake, dir));
    const key = await newKey(first.url, { name: "video crash", videos_per_day: 2 });
    fake.queue.push({ status: 200, body: '{"requestId":"never-seen"}', delayMs: 60_000 });
    const submitting = fetch(`${first.url}/v1/videos`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ prompt: "lost in the crash?" }),
    }).then((res) => res.body?.cancel(), () => {});
    await until("the submit at SiliconFlow", () => fake.inFlight() === 1, 10_000);
    const kv = await Deno.openKv(`${dir}/kv.sqlite3`);
    const id = await until("the job kept before the submit", async () => {
      for await (const entry of kv.list({ prefix: ["video"] })) return entry.key[1] as string;
    }, 5_000);
    kv.close();
    assertEquals((await remaining(first.url, key)).videos_today, 1);
    await first.stop("SIGKILL");
    await submitting;
    const second = await spawnIn(dir, env(fake, dir, 1_000));
    try {
      const headers = { authorization: `Bearer ${key}` };
      const failed = await untilDone(second.url, id, 15_000, headers);
      assertEquals(failed.status, "failed");
      assertEquals((failed.error as { code: string }).code, "video_not_submitted");
      await until(
        "the video given back",
        async () => (await remaining(second.url, key)).videos_today === 2,
        10_000,
      );
    } finally {
      await second.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
);
