/**
 * The memory budget of a held stream, stated once: while SiliconFlow works (tens of seconds for an
 * image), a streamed chat holds its connection, its upstream call and its keep-alives. Thousands
 * may wait at once, so what each one holds is the number that matters, not the microseconds of
 * handling it. Held by this test against `main.ts` as `deno task start` runs it.
 */
import { assert } from "@std/assert";
import { startFakeUpstream, TEST_KEY, until } from "./_helpers.ts";
import { spawnMain } from "./_spawn.ts";

/** The most resident memory one held stream may add (its connection, upstream call, timers). */
export const HELD_STREAM_BYTES = 160 * 1024;

const chat = JSON.stringify({
  model: "Qwen/Qwen-Image",
  stream: true,
  messages: [{ role: "user", content: "a cat" }],
});

/** The process's resident memory, from `ps` (reading /proc takes every permission in Deno). */
async function rss(pid: number): Promise<number> {
  const out = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)] }).output();
  return Number(new TextDecoder().decode(out.stdout).trim()) * 1024;
}

Deno.test({
  name: `a held stream costs at most ${HELD_STREAM_BYTES / 1024} KB of memory`,
  ignore: Deno.build.os === "windows",
  async fn() {
    await using fake = startFakeUpstream();
    const server = await spawnMain([], {
      SILICONFLOW_BASE_URL: fake.baseUrl,
      MAX_CONCURRENCY: "1000",
      KEEPALIVE_MS: "1000",
    });
    const count = 400;
    const aborts = new AbortController();
    try {
      // Warm: the routes, zod and the first connections are loaded before the reading.
      const warm = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${TEST_KEY}`, "content-type": "application/json" },
        body: chat,
      });
      await warm.text();
      const before = await rss(server.child.pid);
      fake.delayMs = 60_000;
      const held = Array.from({ length: count }, () =>
        fetch(`${server.url}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${TEST_KEY}`, "content-type": "application/json" },
          body: chat,
          signal: aborts.signal,
        }).then((res) => res.body?.getReader().read()).catch(() => {}));
      await until(`${count} streams held`, () => fake.inFlight() === count, 30_000);
      await Promise.all(held);
      const perStream = ((await rss(server.child.pid)) - before) / count;
      console.log(`a held stream: ${(perStream / 1024).toFixed(1)} KB`);
      assert(perStream <= HELD_STREAM_BYTES, `${perStream} bytes per held stream`);
    } finally {
      aborts.abort();
      await server.stop("SIGTERM");
    }
  },
});
