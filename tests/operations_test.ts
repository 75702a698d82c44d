import { assert, assertEquals, assertMatch, assertStringIncludes, assertThrows } from "@std/assert";
import { ConfigError, loadConfig } from "../lib/config.ts";
import { createLogger } from "../lib/server/logger.ts";
import { fingerprint, isAccepted } from "../lib/siliconflow/keys.ts";
import { post, readSse, startFakeUpstream, startServer, TEST_KEY, until } from "./_helpers.ts";
import { spawnMain } from "./_spawn.ts";

const SF_A = "sk-server-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SF_B = "sk-server-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SF_C = "sk-server-cccccccccccccccccccccccccccccccc";
const ACCESS = "pk-family-1234567890abcdef";
const chatBody = (stream = false) => ({
  model: "Qwen/Qwen-Image",
  messages: [{ role: "user", content: "a boat" }],
  stream,
});

Deno.test("key modes: refusal to start, access keys, anonymous opt-in", async (t) => {
  await t.step("only SILICONFLOW_API_KEY refuses to start and explains the fix", () => {
    const err = assertThrows(
      () => loadConfig((n) => ({ SILICONFLOW_API_KEY: SF_A } as Record<string, string>)[n]),
      ConfigError,
    );
    assertStringIncludes(err.message, "PROXY_API_KEYS");
    assertStringIncludes(err.message, "ALLOW_ANONYMOUS=true");
    assertEquals(err.message.includes(SF_A), false);
  });
  await t.step("only PROXY_API_KEYS refuses to start", () => {
    assertThrows(
      () => loadConfig((n) => ({ PROXY_API_KEYS: ACCESS } as Record<string, string>)[n]),
      ConfigError,
    );
  });
  await t.step("modes", () => {
    const env = (e: Record<string, string>) => loadConfig((n) => e[n]).keyMode;
    assertEquals(env({}), "pass-through");
    assertEquals(
      env({ SILICONFLOW_API_KEY: `${SF_A}, ${SF_B}`, PROXY_API_KEYS: ACCESS }),
      "server-key",
    );
    assertEquals(env({ SILICONFLOW_API_KEY: SF_A, ALLOW_ANONYMOUS: "true" }), "anonymous");
  });
  await t.step("constant-time comparison accepts exactly the listed keys", () => {
    assertEquals(isAccepted(ACCESS, ["x", ACCESS]), true);
    assertEquals(isAccepted(ACCESS.slice(0, -1), [ACCESS]), false);
    assertEquals(isAccepted(`${ACCESS}x`, [ACCESS]), false);
    assertEquals(isAccepted("", [ACCESS]), false);
    assertMatch(fingerprint(SF_A), /^key#[0-9a-f]{12}$/);
    assertEquals(fingerprint(SF_A) === fingerprint(SF_B), false);
  });

  await using fake = startFakeUpstream();
  await t.step(
    "server-key: access key checked, server key sent, client's header never forwarded",
    async () => {
      await using server = startServer({
        SILICONFLOW_BASE_URL: fake.baseUrl,
        SILICONFLOW_API_KEY: SF_A,
        PROXY_API_KEYS: `other-key-000000, ${ACCESS}`,
      });
      const ok = await post(`${server.url}/v1/chat/completions`, chatBody(), { key: ACCESS });
      assertEquals(ok.status, 200);
      await ok.body?.cancel();
      assertEquals(fake.received.at(-1)!.authorization, `Bearer ${SF_A}`);
      for (const key of [TEST_KEY, null]) {
        const res = await post(`${server.url}/v1/chat/completions`, chatBody(), { key });
        const body = await res.json();
        assertEquals(res.status, 401);
        assertEquals(
          JSON.stringify(body).includes(SF_A) || JSON.stringify(body).includes(ACCESS),
          false,
        );
      }
      const health = await (await fetch(`${server.url}/healthz`)).text();
      assertEquals(health.includes(SF_A) || health.includes(ACCESS), false);
      assertEquals(JSON.parse(health).mode, "server-key");
    },
  );
  await t.step("anonymous: no client key needed", async () => {
    await using server = startServer({
      SILICONFLOW_BASE_URL: fake.baseUrl,
      SILICONFLOW_API_KEY: SF_A,
      ALLOW_ANONYMOUS: "true",
    });
    const res = await post(`${server.url}/v1/chat/completions`, chatBody(), { key: null });
    assertEquals(res.status, 200);
    await res.body?.cancel();
    assertEquals(fake.received.at(-1)!.authorization, `Bearer ${SF_A}`);
  });
});

Deno.test("upstream keys rotate; 429 rests a key, 401 sets it aside, each retried once on the next", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: `${SF_A},${SF_B},${SF_C}`,
    PROXY_API_KEYS: ACCESS,
  });
  const send = async () => {
    const res = await post(`${server.url}/v1/chat/completions`, chatBody(), { key: ACCESS });
    await res.body?.cancel();
    return res.status;
  };
  const lastKey = () => fake.received.at(-1)!.authorization!.slice(7);
  await t.step("round robin", async () => {
    await send();
    const first = lastKey();
    await send();
    assert(lastKey() !== first);
  });
  await t.step("a 429 key rests for its Retry-After and the call moves on", async () => {
    const before = fake.received.length;
    fake.queue.push({
      status: 429,
      body: '{"message":"TPM limit reached."}',
      headers: { "retry-after": "120" },
    });
    assertEquals(await send(), 200);
    const [limited, retried] = fake.received.slice(before).map((r) => r.authorization);
    assert(limited !== retried);
    for (let i = 0; i < 4; i++) {
      await send();
      assert(fake.received.at(-1)!.authorization !== limited, "a resting key is skipped");
    }
    assertEquals(
      server.logs.some((l) =>
        l.msg.includes("rate-limited") && l.key === fingerprint(limited!.slice(7))
      ),
      true,
    );
  });
  await t.step("a 401 key is set aside and reported; the call moves on", async () => {
    const before = fake.received.length;
    fake.queue.push({ status: 401, body: '"Invalid token"' });
    assertEquals(await send(), 200);
    const rejected = fake.received[before].authorization!;
    for (let i = 0; i < 3; i++) {
      await send();
      assert(fake.received.at(-1)!.authorization !== rejected);
    }
    assertEquals(
      server.logs.some((l) => l.level === "error" && l.key === fingerprint(rejected.slice(7))),
      true,
    );
    const health = await (await fetch(`${server.url}/healthz`)).json();
    assertEquals(health.upstream_keys.sort(), ["ready", "resting", "set aside"]);
  });
  await t.step("with every key out of use the answer is honest", async () => {
    fake.queue.push({ status: 401, body: '"Invalid token"' });
    const res = await post(`${server.url}/v1/chat/completions`, chatBody(), { key: ACCESS });
    const body = await res.json();
    assertEquals(res.status, 401);
    assertStringIncludes(body.error.message, "Invalid token");
    const next = await post(`${server.url}/v1/chat/completions`, chatBody(), { key: ACCESS });
    assertEquals(next.status, 429, "only the resting key is left");
    assert(Number(next.headers.get("retry-after")) > 0);
    await next.body?.cancel();
  });
});

Deno.test("body limits: 413 whatever Content-Length says, 408 for a slow body", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    MAX_BODY_BYTES: "2048",
    BODY_TIMEOUT_MS: "300",
  });
  const { port } = new URL(server.url);
  const raw = async (head: string, body: string, wait = false) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
    await conn.write(new TextEncoder().encode(head + body));
    const buf = new Uint8Array(4096);
    let text = "";
    const started = Date.now();
    while (!text.includes("\r\n\r\n{") || !text.trimEnd().endsWith("}")) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
      if (!wait && Date.now() - started > 5000) break;
    }
    conn.close();
    return text;
  };
  await t.step("a huge declared Content-Length is refused before reading", async () => {
    const text = await raw(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TEST_KEY}\r\ncontent-length: 999999999\r\n\r\n`,
      "{",
    );
    assertMatch(text, /^HTTP\/1\.1 413/);
    assertStringIncludes(text, '"request_too_large"');
  });
  await t.step("a chunked body with no length is counted as it streams", async () => {
    const big = JSON.stringify({ ...chatBody(), pad: "x".repeat(5000) });
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TEST_KEY}` },
      body: new Blob([big]).stream(),
    });
    assertEquals(res.status, 413);
    assertEquals((await res.json()).error.code, "request_too_large");
  });
  await t.step(
    "a Content-Length that understates the body only gets its declared bytes",
    async () => {
      const body = JSON.stringify(chatBody());
      const text = await raw(
        `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TEST_KEY}\r\ncontent-length: 5\r\n\r\n`,
        body,
      );
      assertMatch(text, /^HTTP\/1\.1 400/);
    },
  );
  await t.step("a body that stops arriving is dropped with 408", async () => {
    const started = Date.now();
    const text = await raw(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TEST_KEY}\r\ncontent-length: 100\r\n\r\n`,
      '{"model"',
      true,
    );
    assertMatch(text, /^HTTP\/1\.1 408/);
    assert(Date.now() - started < 3000);
  });
  assertEquals(fake.received.length, 0);
});

Deno.test("MAX_CONCURRENCY: past it, an immediate 429 with Retry-After", async () => {
  await using fake = startFakeUpstream();
  fake.delayMs = 400;
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, MAX_CONCURRENCY: "2" });
  const running = [
    post(`${server.url}/v1/chat/completions`, chatBody(true)),
    post(`${server.url}/v1/images/generations`, { prompt: "x", model: "dall-e-3" }),
  ];
  while (fake.inFlight() < 2) await new Promise((r) => setTimeout(r, 5));
  const health = await (await fetch(`${server.url}/healthz`)).json();
  assertEquals(health.in_flight, { generations: 2, streams: 1 });
  const started = Date.now();
  const refused = await post(`${server.url}/v1/chat/completions`, chatBody());
  assertEquals(refused.status, 429);
  assert(Date.now() - started < 200, "answered at once, not queued");
  assertEquals(refused.headers.get("retry-after"), "2");
  assertEquals((await refused.json()).error.code, "server_busy");
  for (const res of await Promise.all(running)) await res.body?.cancel();
  await until("nothing in flight", async () => {
    const { in_flight } = await (await fetch(`${server.url}/healthz`)).json();
    return fake.inFlight() === 0 && in_flight.generations === 0 && in_flight.streams === 0;
  }, 5_000);
  const after = await post(`${server.url}/v1/chat/completions`, chatBody());
  assertEquals(after.status, 200);
  await after.body?.cancel();
});

Deno.test("request ids: in the header, the log line and the error message", async () => {
  await using server = startServer({});
  const res = await post(`${server.url}/v1/chat/completions`, { messages: [] }, {
    headers: { "x-request-id": "trace-42" },
  });
  assertEquals(res.headers.get("x-request-id"), "trace-42");
  assertStringIncludes((await res.json()).error.message, "request id: trace-42");
  assertEquals(server.logs.at(-1)!.req, "trace-42");
  const health = await (await fetch(`${server.url}/healthz`)).json();
  assertEquals([health.status, health.mode, typeof health.version], [
    "ok",
    "pass-through",
    "string",
  ]);
});

Deno.test("LOG_FORMAT=json writes one JSON object per line; text stays readable", () => {
  const lines: string[] = [];
  createLogger("json", (l) => lines.push(l), () => 0)({
    level: "info",
    msg: "POST /v1/x",
    status: 200,
    req: "r1",
  });
  assertEquals(JSON.parse(lines[0]), {
    time: "1970-01-01T00:00:00.000Z",
    level: "info",
    msg: "POST /v1/x",
    status: 200,
    req: "r1",
  });
  createLogger("text", (l) => lines.push(l), () => 0)({
    level: "warn",
    msg: "POST /v1/x",
    status: 429,
    model: undefined,
  });
  assertEquals(lines[1], "1970-01-01T00:00:00.000Z WARN POST /v1/x status=429");
});

Deno.test("LOG_LEVEL: warn drops the request lines, never the start-up line", async (t) => {
  await t.step("the logger leaves out records below the level", () => {
    const lines: string[] = [];
    const log = createLogger("json", (l) => lines.push(l), () => 0, "warn");
    log({ level: "info", msg: "GET /healthz", status: 200 });
    log({ level: "warn", msg: "key set aside" });
    log({ level: "error", msg: "POST /v1/x", status: 500 });
    assertEquals(lines.map((l) => JSON.parse(l).msg), ["key set aside", "POST /v1/x"]);
  });
  for (const [level, logged] of [["info", true], ["warn", false]] as const) {
    await t.step(`main.ts with LOG_LEVEL=${level}`, async () => {
      const server = await spawnMain(["--demo"], { LOG_LEVEL: level, LOG_FORMAT: "json" });
      // The line is written before the answer goes out.
      await fetch(`${server.url}/healthz`).then((r) => r.arrayBuffer());
      await server.stop("SIGTERM");
      const output = await server.output;
      assertStringIncludes(output, "listening on");
      assertEquals(output.includes('"msg":"GET /healthz"'), logged);
    });
  }
});

/** Reads what is left of a response body as text. */
async function readRest(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  let text = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) return text;
    text += new TextDecoder().decode(value);
  }
}

Deno.test("shutdown: in-flight generations finish within the grace, later ones get an error event", async (t) => {
  await using fake = startFakeUpstream();
  await t.step("a generation that finishes within the grace completes", async () => {
    fake.delayMs = 300;
    const server = await spawnMain([], {
      STREAM_HOLD_MS: "0",
      SILICONFLOW_BASE_URL: fake.baseUrl,
      SHUTDOWN_GRACE_MS: "3000",
    });
    const res = await post(`${server.url}/v1/chat/completions`, chatBody(true));
    const reader = res.body!.getReader();
    await reader.read();
    const status = server.stop("SIGTERM");
    assertStringIncludes(await readRest(reader), "data: [DONE]");
    assertEquals((await status).code, 0);
    assertStringIncludes(await server.output, "SIGTERM");
  });
  await t.step(
    "past the grace, the stream ends with an OpenAI error event and the upstream call is aborted",
    async () => {
      fake.delayMs = 10_000;
      const aborted = fake.aborted();
      const server = await spawnMain([], {
        STREAM_HOLD_MS: "0",
        SILICONFLOW_BASE_URL: fake.baseUrl,
        SHUTDOWN_GRACE_MS: "200",
        KEEPALIVE_MS: "50",
      });
      const res = await post(`${server.url}/v1/chat/completions`, chatBody(true));
      const reader = res.body!.getReader();
      await reader.read();
      const started = Date.now();
      const status = server.stop("SIGTERM");
      const frames = await readSse(new Response(await readRest(reader)));
      const last = JSON.parse(frames.at(-1)!);
      assertEquals(last.error.code, "server_shutting_down");
      assert(Date.now() - started < 3000);
      assertEquals((await status).code, 0);
      const deadline = Date.now() + 2000;
      while (fake.aborted() === aborted && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assertEquals(fake.aborted(), aborted + 1);
    },
  );
});

Deno.test("upstream HTTP/2: calls spread over connections, so a per-connection stream cap does not queue them", async () => {
  // The fake speaks HTTPS with HTTP/2 and, as Deno.serve does, caps concurrent streams per
  // connection (about 200). With 600 one-second calls on one connection, the last 200 would start
  // after two seconds and run past the 2.6 s timeout; spread over connections, all finish in one.
  const tls = new URL("../bench/tls/", import.meta.url).pathname;
  let inFlight = 0;
  let peak = 0;
  const fake = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    cert: await Deno.readTextFile(`${tls}cert.pem`),
    key: await Deno.readTextFile(`${tls}key.pem`),
  }, async (req) => {
    await req.arrayBuffer();
    inFlight++;
    peak = Math.max(peak, inFlight);
    await new Promise((r) => setTimeout(r, 1000));
    inFlight--;
    return Response.json({ images: [{ url: "https://example.com/a.png" }], seed: 1 });
  });
  const server = await spawnMain([], {
    STREAM_HOLD_MS: "0",
    SILICONFLOW_BASE_URL: `https://localhost:${fake.addr.port}/v1`,
    DENO_CERT: `${tls}ca.pem`,
    MAX_CONCURRENCY: "600",
    UPSTREAM_TIMEOUT_MS: "2600",
  });
  try {
    const failures: string[] = [];
    await Promise.all(Array.from({ length: 600 }, async () => {
      const res = await post(`${server.url}/v1/chat/completions`, chatBody());
      const text = await res.text();
      if (res.status !== 200) failures.push(`${res.status} ${text.slice(0, 200)}`);
    }));
    assertEquals(failures.length, 0, failures.slice(0, 3).join("\n"));
    // One connection would have held at most the fake's cap (about 200) at once.
    assert(peak > 250, `only ${peak} calls were in flight upstream at once`);
  } finally {
    await server.stop();
    await fake.shutdown();
  }
});
