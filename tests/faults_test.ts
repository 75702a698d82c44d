/**
 * The upstream fault matrix across every status code, client aborts at every phase, a burst of
 * aborting clients, and a bounded soak. Each case ends in the documented error, within the
 * timeout, leaves nothing running, and later requests succeed.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { post, readSse, startFakeUpstream, startServer, TEST_KEY } from "./_helpers.ts";

const chatBody = (stream = false) => ({
  model: "Qwen/Qwen-Image",
  messages: [{ role: "user", content: "a kite" }],
  stream,
});

/** What the proxy answers for an upstream status (see the README's error table). */
function expectedStatus(status: number): number {
  if ([400, 401, 403, 429, 503].includes(status)) return status;
  if (status === 504) return 504;
  return 502;
}

const health = async (url: string) => (await (await fetch(`${url}/healthz`)).json()).in_flight;

Deno.test("every upstream status, with JSON and plain bodies, streamed and not", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  // One request at a time: the fake's canned answers are handed out in arrival order.
  for (const stream of [false, true]) {
    for (const plain of [false, true]) {
      for (let status = 200; status < 600; status++) {
        const message = `upstream says ${status}`;
        fake.queue.push({
          status,
          body: plain ? message : JSON.stringify({ code: status, message, data: null }),
          headers: { location: "http://127.0.0.1:1/elsewhere" },
        });
        const res = await post(`${server.url}/v1/chat/completions`, chatBody(stream));
        if (!stream) {
          const json = await res.json();
          assertEquals(
            res.status,
            expectedStatus(status),
            `upstream ${status}: ${JSON.stringify(json)}`,
          );
          assertEquals(typeof json.error.message, "string");
          if (![200, 204, 205, 304].includes(status)) {
            assertStringIncludes(json.error.message, String(status));
          }
        } else {
          assertEquals(res.status, 200);
          const frames = await readSse(res);
          const last = JSON.parse(frames.at(-1)!);
          assertEquals(typeof last.error.message, "string", `upstream ${status}`);
        }
      }
    }
  }
  const ok = await post(`${server.url}/v1/chat/completions`, chatBody());
  assertEquals(ok.status, 200);
  await ok.body?.cancel();
});

Deno.test("a very large upstream answer is a 502, not a memory spike", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  fake.queue.push({
    status: 200,
    body: `{"images":[{"url":"http://x/${"a".repeat(20 * 1024 * 1024)}"}]}`,
  });
  const res = await post(`${server.url}/v1/chat/completions`, chatBody());
  assertEquals(res.status, 502);
  assertStringIncludes((await res.json()).error.message, "too large");
});

Deno.test("client aborts at every phase leave nothing running", async (t) => {
  await using fake = startFakeUpstream();
  fake.delayMs = 5000;
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    KEEPALIVE_MS: "20",
    BODY_TIMEOUT_MS: "2000",
    MAX_CONCURRENCY: "1000",
  });
  const url = `${server.url}/v1/chat/completions`;

  await t.step("while sending the body", async () => {
    const controller = new AbortController();
    let pull = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (pull++ === 0) c.enqueue(new TextEncoder().encode('{"model":"Qwen/Qwen-Image",'));
        return new Promise(() => {}); // and then nothing more
      },
    });
    const res = fetch(url, {
      method: "POST",
      body,
      signal: controller.signal,
      headers: { authorization: `Bearer ${TEST_KEY}` },
    });
    await new Promise((r) => setTimeout(r, 50));
    controller.abort();
    await res.catch(() => {});
  });
  await t.step("while waiting, and mid-stream", async () => {
    for (const stream of [false, true]) {
      const controller = new AbortController();
      const res = post(url, chatBody(stream), { signal: controller.signal });
      while (fake.inFlight() === 0) await new Promise((r) => setTimeout(r, 5));
      if (stream) await (await res).body!.getReader().read();
      controller.abort();
      await res.then((r) => r.body?.cancel()).catch(() => {});
    }
  });
  await t.step("a burst of 500 aborting clients", async () => {
    const controllers = Array.from({ length: 500 }, () => new AbortController());
    const responses = controllers.map((c, i) =>
      post(url, chatBody(i % 2 === 0), { signal: c.signal }).catch(() => undefined)
    );
    const deadline = Date.now() + 10_000;
    while (fake.inFlight() < 500 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(fake.inFlight(), 500);
    for (const c of controllers) c.abort();
    for (const r of await Promise.all(responses)) await r?.body?.cancel().catch(() => {});
  });
  const deadline = Date.now() + 3000;
  while (
    (fake.inFlight() > 0 || (await health(server.url)).generations > 0) && Date.now() < deadline
  ) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assertEquals(fake.inFlight(), 0, "no upstream request left running");
  assertEquals(
    await health(server.url),
    { generations: 0, streams: 0 },
    "the server's counters are back at zero",
  );
  assert(fake.aborted() >= 502);
  // Deno's sanitizers fail this test if a keep-alive interval or timeout were still alive.
});

Deno.test("a bounded soak: 20,000 mixed requests, faults included, leak nothing", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, KEEPALIVE_MS: "5" });
  const url = server.url;
  const kinds = [
    () => post(`${url}/v1/chat/completions`, chatBody()),
    () => post(`${url}/v1/chat/completions`, chatBody(true)),
    () => post(`${url}/v1/images/generations`, { prompt: "x", model: "dall-e-3", n: 2 }),
    () => post(`${url}/v1/chat/completions`, { ...chatBody(), seed: "nope" }),
    () => post(`${url}/v1/chat/completions`, "{broken"),
    () => fetch(`${url}/v1/models`),
    () => {
      fake.queue.push({ status: 503, body: '{"message":"overloaded"}' });
      return post(`${url}/v1/chat/completions`, chatBody());
    },
    () => {
      const c = new AbortController();
      const res = post(`${url}/v1/chat/completions`, chatBody(true), { signal: c.signal });
      setTimeout(() => c.abort(), 1);
      return res;
    },
  ];
  let sent = 0;
  // The helpers keep every log line and upstream request for other tests' assertions; here they
  // would grow with the run and hide (or fake) a leak, so they are checked and emptied as we go.
  const drainRecords = () => {
    for (const line of server.lines) assertEquals(line.includes(TEST_KEY), false);
    server.lines.length = 0;
    server.logs.length = 0;
    fake.received.length = 0;
  };
  const run = async (total: number) => {
    const target = sent + total;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (sent < target) {
        const kind = kinds[sent++ % kinds.length];
        if (sent % 1000 === 0) drainRecords();
        try {
          const res = await kind();
          await res.arrayBuffer();
          assert(res.status !== 500);
        } catch (err) {
          if (!(err instanceof DOMException && err.name === "AbortError")) throw err;
        }
      }
    }));
  };
  // The allocator keeps growing for the first several thousand requests on this machine, then
  // levels off (seen: +150 MB by 8,000, flat after), so the warm-up is long. With
  // --v8-flags=--expose-gc (as `deno task test` runs) the heap readings follow a full GC.
  const exposed = (globalThis as { gc?: () => void }).gc;
  const gc = () => exposed?.();
  await run(8000);
  drainRecords();
  const warm = Deno.memoryUsage().rss;
  gc();
  const warmHeap = Deno.memoryUsage().heapUsed;
  await run(20_000);
  await new Promise((r) => setTimeout(r, 100));
  drainRecords();
  const after = Deno.memoryUsage().rss;
  gc();
  const afterHeap = Deno.memoryUsage().heapUsed;
  console.log(
    `soak: RSS ${(warm / 1e6).toFixed(0)} → ${(after / 1e6).toFixed(0)} MB, heap ${
      (warmHeap / 1e6).toFixed(1)
    } → ${(afterHeap / 1e6).toFixed(1)} MB`,
  );
  assertEquals(await health(url), { generations: 0, streams: 0 });
  assertEquals(fake.inFlight(), 0);
  if (exposed) assert(afterHeap <= warmHeap * 1.1, `heap grew from ${warmHeap} to ${afterHeap}`);
  if (after > warm * 1.1) {
    // A leak grows with every request. The allocator, though, sometimes steps up once and stays
    // (seen: about 110 MB, in one run in three, since the server's own memory fell and with it the
    // warm reading; the heap after a full GC stays flat). A second round tells the two apart.
    await run(20_000);
    await new Promise((r) => setTimeout(r, 100));
    drainRecords();
    const again = Deno.memoryUsage().rss;
    console.log(`soak: RSS after a second round ${(again / 1e6).toFixed(0)} MB`);
    assert(again <= after * 1.1, `RSS grew from ${warm} to ${after}, then to ${again} bytes`);
  }
});
