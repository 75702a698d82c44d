/**
 * Hostile traffic: connection floods, inputs shaped to cost more than linear time, clients that
 * stall their bodies, and one client's failure spilling over onto others.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { KEY_COOLDOWN_MS } from "../lib/siliconflow/keys.ts";
import { PNG_DATA_URI, post, startFakeUpstream, startServer, TEST_KEY, until } from "./_helpers.ts";
import { untilDone } from "./_videos.ts";
import { spawnMain } from "./_spawn.ts";

const encoder = new TextEncoder();

async function healthy(url: string, timeoutMs = 2_000): Promise<boolean> {
  try {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

Deno.test("a connection flood past the open-file limit does not end the process; it serves again by itself", async () => {
  const server = await spawnMain(["--demo"], {}, { maxOpenFiles: 96 });
  const conns: Deno.TcpConn[] = [];
  try {
    const port = Number(new URL(server.url).port);
    // Idle sockets and headers sent one byte at a time, until the server cannot take more.
    for (let i = 0; i < 400; i++) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conns.push(conn);
        if (i % 2) await conn.write(encoder.encode("G")).catch(() => {});
      } catch {
        break; // refused: the listener is down for now
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const conn of conns.splice(0)) {
      try {
        conn.close();
      } catch { /* closed by the server */ }
    }
    let back = false;
    for (let i = 0; i < 50 && !back; i++) {
      back = await healthy(server.url, 500);
      if (!back) await new Promise((r) => setTimeout(r, 200));
    }
    assert(back, "the server did not serve again after the flood");
    const response = await fetch(`${server.url}/v1/models`);
    assertEquals(response.status, 200);
    await response.body?.cancel();
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
    await server.stop("SIGTERM");
  }
  const output = await server.output;
  assert(!/Uncaught/.test(output), output);
  const failures = output.match(/accept loop failed/g) ?? [];
  assertEquals(failures.length, 1, `one log line per burst:\n${output}`);
  assertMatch(output, /listening again after accept failures/);
});

/** A raw HTTP/1.1 exchange, for requests no client library would send. */
async function rawExchange(
  port: number,
  head: string,
  body: string,
  options: { holdMs?: number; drip?: string[] } = {},
): Promise<{ text: string; closedByServer: boolean; conn: Deno.TcpConn }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(head + body));
  const dripping = (async () => {
    for (const piece of options.drip ?? []) {
      await new Promise((r) => setTimeout(r, 100));
      await conn.write(encoder.encode(piece)).catch(() => {});
    }
  })();
  const buf = new Uint8Array(8192);
  let text = "";
  let closedByServer = false;
  const deadline = Date.now() + (options.holdMs ?? 5_000);
  while (Date.now() < deadline) {
    const n = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise<"wait">((r) => setTimeout(() => r("wait"), deadline - Date.now())),
    ]);
    if (n === "wait") break;
    if (n === null) {
      closedByServer = true;
      break;
    }
    text += new TextDecoder().decode(buf.subarray(0, n));
    if (!options.holdMs && /\r\n\r\n[\s\S]*\}\s*$/.test(text)) break;
  }
  await dripping;
  return { text, closedByServer, conn };
}

/** A multipart body with text fields and `image[]` files, built as bytes (fast for many parts). */
function multipart(
  fields: Record<string, string>,
  files: Uint8Array[],
): { body: Uint8Array<ArrayBuffer>; type: string } {
  const boundary = "hostile-boundary";
  const pieces: Uint8Array[] = [];
  for (const [name, value] of Object.entries(fields)) {
    pieces.push(
      encoder.encode(
        `--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`,
      ),
    );
  }
  const fileHead = encoder.encode(
    `--${boundary}\r\ncontent-disposition: form-data; name="image[]"; filename="a.png"\r\ncontent-type: image/png\r\n\r\n`,
  );
  const crlf = encoder.encode("\r\n");
  for (const file of files) pieces.push(fileHead, file, crlf);
  pieces.push(encoder.encode(`--${boundary}--\r\n`));
  const body = new Uint8Array(pieces.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const p of pieces) {
    body.set(p, offset);
    offset += p.byteLength;
  }
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}

const PNG_SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const chat = (content: unknown, model = "Qwen/Qwen-Image", extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model, messages: [{ role: "user", content }], ...extra });

Deno.test("stalled uploads: 408 with Connection: close for JSON and multipart, and shutdown does not wait for them", async (t) => {
  const server = await spawnMain(["--demo"], {
    BODY_TIMEOUT_MS: "300",
    SHUTDOWN_GRACE_MS: "10000",
  });
  const port = Number(new URL(server.url).port);
  const held: Deno.TcpConn[] = [];
  try {
    const post = (path: string, type: string, length: string) =>
      `POST ${path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\ncontent-type: ${type}\r\n${length}\r\n`;
    await t.step("JSON with a lying Content-Length", async () => {
      const started = Date.now();
      const { text, conn } = await rawExchange(
        port,
        post("/v1/chat/completions", "application/json", "content-length: 1000\r\n"),
        '{"model"',
      );
      held.push(conn);
      assertMatch(text, /^HTTP\/1\.1 408/);
      assertMatch(text, /\r\nconnection: close\r\n/i);
      assert(Date.now() - started < 3_000);
    });
    await t.step("multipart with a lying Content-Length", async () => {
      const started = Date.now();
      const { text, conn } = await rawExchange(
        port,
        post("/v1/images/edits", "multipart/form-data; boundary=XX", "content-length: 100000\r\n"),
        '--XX\r\ncontent-disposition: form-data; name="prompt"\r\n\r\nhi\r\n',
      );
      held.push(conn);
      assertMatch(text, /^HTTP\/1\.1 408/);
      assertMatch(text, /"request_timeout"/);
      assertMatch(text, /\r\nconnection: close\r\n/i);
      assert(Date.now() - started < 3_000);
    });
    await t.step("multipart with an endless chunked body", async () => {
      const started = Date.now();
      const piece = "a".repeat(16);
      const chunk = `${piece.length.toString(16)}\r\n${piece}\r\n`;
      const { text, conn } = await rawExchange(
        port,
        post(
          "/v1/images/edits",
          "multipart/form-data; boundary=XX",
          "transfer-encoding: chunked\r\n",
        ),
        chunk,
        { drip: Array(10).fill(chunk) },
      );
      held.push(conn);
      assertMatch(text, /^HTTP\/1\.1 408/);
      assert(Date.now() - started < 3_000);
    });
    await t.step(
      "SIGTERM exits at once although the stalled clients keep their sockets",
      async () => {
        const started = Date.now();
        const status = await server.stop("SIGTERM");
        assertEquals(status.code, 0);
        assert(Date.now() - started < 4_000, `took ${Date.now() - started} ms`);
      },
    );
  } finally {
    for (const conn of held) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    await server.stop();
  }
});

/** How long `/healthz` takes to answer while `load` runs on the server. */
async function healthWhile(url: string, load: () => Promise<Response>): Promise<{
  healthMs: number;
  response: Response;
}> {
  const running = load();
  await new Promise((r) => setTimeout(r, 30));
  const started = Date.now();
  const ok = await healthy(url, 10_000);
  const healthMs = Date.now() - started;
  assert(ok, "healthz failed");
  return { healthMs, response: await running };
}

// Sizes at which the quadratic versions took tens of seconds; linear ones take milliseconds.
const HEALTH_BOUND_MS = 1_500;

Deno.test("inputs shaped to cost quadratic time are linear: /healthz answers meanwhile", async (t) => {
  const server = await spawnMain(["--demo"], { MAX_BODY_BYTES: String(16 * 1024 * 1024) });
  const send = (path: string, body: BodyInit, type = "application/json") => () =>
    fetch(`${server.url}${path}`, {
      method: "POST",
      headers: { authorization: "Bearer k", "content-type": type },
      body,
    });
  const check = async (shape: string, load: () => Promise<Response>, status: number) => {
    const { healthMs, response } = await healthWhile(server.url, load);
    const text = await response.text();
    assertEquals(response.status, status, `${shape}: ${text.slice(0, 300)}`);
    assert(healthMs < HEALTH_BOUND_MS, `${shape}: /healthz took ${healthMs} ms`);
  };
  try {
    await t.step("a prompt of 200 KB of flags that fail at its end", async () => {
      const prompt = "a cat " + "--seed 1 ".repeat(22_000) + "--ar";
      // Read in linear time, then refused: a prompt past MAX_PROMPT_CHARS.
      await check("flags", send("/v1/chat/completions", chat(prompt)), 400);
    });
    await t.step("an earlier assistant message of 300 KB of '![' (multi-turn scan)", async () => {
      const body = JSON.stringify({
        model: "Qwen/Qwen-Image-Edit-2509",
        messages: [
          { role: "user", content: "make a cat" },
          { role: "assistant", content: "![".repeat(150_000) },
          { role: "assistant", content: "![a](http://x" + "![b](http://x".repeat(20_000) },
          { role: "user", content: "now make it blue" },
        ],
      });
      await check("markdown", send("/v1/chat/completions", body), 400);
    });
    await t.step("a multipart edit of 50,000 tiny image parts", async () => {
      const { body, type } = multipart(
        { prompt: "edit", model: "Qwen/Qwen-Image-Edit-2509" },
        Array(50_000).fill(PNG_SIGNATURE),
      );
      await check("multipart", send("/v1/images/edits", body, type), 400);
    });
    await t.step("16 parallel demo images of the largest size", async () => {
      const { healthMs, response } = await healthWhile(server.url, async () => {
        const all = await Promise.all(
          Array.from(
            { length: 16 },
            (_, i) => fetch(`${server.url}/demo/images/2048x2048/${i}.png`),
          ),
        );
        for (const r of all) assertEquals((await r.arrayBuffer()).byteLength > 1000, true);
        return all[0];
      });
      assertEquals(response.status, 200);
      assert(healthMs < HEALTH_BOUND_MS, `demo images: /healthz took ${healthMs} ms`);
    });
  } finally {
    await server.stop();
  }
});

const OWNER_A = "sk-owner-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OWNER_B = "sk-owner-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ACCESS = "pk-class-1234567890abcdef";
const simpleChat = { model: "Qwen/Qwen-Image", messages: [{ role: "user", content: "a cat" }] };

Deno.test("server keys: a 403 about the model fails that request alone; a bad key comes back after its cool-down", async (t) => {
  let clock = Date.now();
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: `${OWNER_A},${OWNER_B}`,
    PROXY_API_KEYS: ACCESS,
  }, { now: () => clock });
  const send = async () => {
    const res = await post(`${server.url}/v1/chat/completions`, simpleChat, { key: ACCESS });
    const body = await res.json();
    return { status: res.status, body };
  };
  const health = async () => await (await fetch(`${server.url}/healthz`)).json();
  await t.step(
    "a bare 403 (a model the account may not use) is this request's failure",
    async () => {
      const before = fake.received.length;
      fake.queue.push({ status: 403, body: '"Forbidden"' });
      const failed = await send();
      assertEquals(failed.status, 403);
      assertEquals(fake.received.length - before, 1, "not retried on the other key");
      assertEquals((await health()).upstream_keys, ["ready", "ready"]);
      for (let i = 0; i < 3; i++) assertEquals((await send()).status, 200);
    },
  );
  await t.step("a 403 that says the key's balance is gone sets the key aside", async () => {
    fake.queue.push({
      status: 403,
      body: '{"code":30001,"message":"Sorry, your account balance is insufficient","data":null}',
    });
    assertEquals((await send()).status, 200, "moved on to the other key");
    assertEquals((await health()).upstream_keys.sort(), ["ready", "set aside"]);
  });
  await t.step(
    "a 401 sets the other key aside: 503 with Retry-After, then back after the cool-down",
    async () => {
      fake.queue.push({ status: 401, body: '"Invalid token"' });
      assertEquals((await send()).status, 401);
      const res = await post(`${server.url}/v1/chat/completions`, simpleChat, { key: ACCESS });
      assertEquals(res.status, 503);
      assert(Number(res.headers.get("retry-after")) > 0);
      assertEquals((await res.json()).error.code, "no_upstream_key");
      const h = await health();
      assertEquals(h.upstream_keys, ["set aside", "set aside"]);
      assert(h.upstream_keys_back_in_s.every((s: number) => s > 0));
      clock += KEY_COOLDOWN_MS + 1_000;
      assertEquals((await health()).upstream_keys, ["ready", "ready"]);
      assertEquals((await send()).status, 200);
    },
  );
});

Deno.test("upstream errors never repeat an owner key, however short", async () => {
  const short = "sk-9f3";
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: short,
    PROXY_API_KEYS: ACCESS,
  });
  fake.queue.push({ status: 400, body: `{"code":20015,"message":"bad key ${short} for model"}` });
  const res = await post(`${server.url}/v1/chat/completions`, simpleChat, { key: ACCESS });
  const text = await res.text();
  assertEquals(res.status, 400);
  assert(!text.includes(short), text);
  assertStringIncludes(text, "[redacted]");
  assert(!server.lines.some((l) => l.includes(short)));
});

Deno.test("MAX_BODY_BUFFER_BYTES bounds the bodies held at once: past it an immediate 503 with Retry-After", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    MAX_BODY_BYTES: String(64 * 1024),
    MAX_BODY_BUFFER_BYTES: String(128 * 1024),
    BODY_TIMEOUT_MS: "1500",
  });
  const port = Number(new URL(server.url).port);
  const head = (length: number) =>
    `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TEST_KEY}\r\ncontent-length: ${length}\r\n\r\n`;
  // Two stalled uploads of 60 KiB each hold the budget.
  const stalled = await Promise.all(
    [0, 1].map(async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(encoder.encode(head(60 * 1024) + "{"));
      return conn;
    }),
  );
  try {
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const refused = await rawExchange(port, head(60 * 1024), "{");
    refused.conn.close();
    assertMatch(refused.text, /^HTTP\/1\.1 503/);
    assertMatch(refused.text, /\r\nretry-after: 2\r\n/i);
    assertMatch(refused.text, /"server_busy"/);
    assert(Date.now() - started < 1_000, "answered at once");
    // A chunked body counts as it arrives: refused once it passes what is left.
    const chunked = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TEST_KEY}` },
      body: new Blob([JSON.stringify({ ...simpleChat, pad: "x".repeat(40_000) })]).stream(),
    });
    assertEquals(chunked.status, 503);
    await chunked.body?.cancel();
    // Small bodies still fit; once the stalled ones time out, the budget is whole again.
    const small = await post(`${server.url}/v1/chat/completions`, simpleChat);
    assertEquals(small.status, 200);
    await small.body?.cancel();
    const big = await until("the budget is whole again", async () => {
      const res = await post(`${server.url}/v1/chat/completions`, {
        ...simpleChat,
        pad: "x".repeat(50_000),
      });
      if (res.status === 200) return res;
      assertEquals(res.status, 503, await res.text());
    }, 10_000);
    await big.body?.cancel();
  } finally {
    for (const conn of stalled) conn.close();
  }
});

Deno.test("odd values are 400s, never 500s: enum fields as objects, a model named like a prototype key", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  for (
    const extra of [
      { image_delivery: { toString: 1 } },
      { image_delivery: "constructor" },
      { progress: { valueOf: 1 } },
      { progress: "__proto__" },
      { image_delivery: ["url"] },
    ]
  ) {
    const res = await post(`${server.url}/v1/chat/completions`, { ...simpleChat, ...extra });
    assertEquals(res.status, 400, JSON.stringify(extra));
    assertEquals((await res.json()).error.param, Object.keys(extra)[0]);
  }
  for (const model of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
    const chatRes = await post(`${server.url}/v1/chat/completions`, { ...simpleChat, model });
    assertEquals(chatRes.status, 404, model);
    assertEquals((await chatRes.json()).error.code, "model_not_found");
    const imageRes = await post(`${server.url}/v1/images/generations`, { prompt: "x", model });
    assertEquals(imageRes.status, 404, model);
    await imageRes.body?.cancel();
    const modelRes = await fetch(`${server.url}/v1/models/${model}`);
    assertEquals(modelRes.status, 404, model);
    await modelRes.body?.cancel();
  }
});

Deno.test("image downloads follow at most three redirects, and only to http(s)", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const origin = new URL(fake.baseUrl).origin;
  const generate = async (path: string) => {
    fake.queue.push({
      status: 200,
      body: JSON.stringify({ images: [{ url: `${origin}${path}` }] }),
    });
    const res = await post(`${server.url}/v1/images/generations`, {
      prompt: "x",
      model: "Qwen/Qwen-Image",
      response_format: "b64_json",
    });
    return { status: res.status, body: await res.json() };
  };
  const three = await generate("/hops/2/x");
  assertEquals(three.status, 200, JSON.stringify(three.body));
  assert(three.body.data[0].b64_json.length > 0);
  const four = await generate("/hops/3/x");
  assertEquals(four.status, 502);
  assertStringIncludes(four.body.error.message, "redirects");
  const offWeb = await generate("/hops/to/file");
  assertEquals(offWeb.status, 502);
  assertStringIncludes(offWeb.body.error.message, "not http(s)");
});

Deno.test(
  "a video's content follows the same redirect policy: a link that leaves http(s) is never followed",
  {},
  async () => {
    await using fake = startFakeUpstream();
    await using server = startServer({
      SILICONFLOW_BASE_URL: fake.baseUrl,
      KV_PATH: ":memory:",
      VIDEO_POLL_MS: "100",
    });
    fake.videoMs = 100;
    fake.videoPath = "/hops/to/file";
    const job = await (await post(`${server.url}/v1/videos`, { prompt: "x" })).json();
    const auth = { authorization: `Bearer ${TEST_KEY}` };
    assertEquals((await untilDone(server.url, job.id, 10_000, auth)).status, "completed");
    const content = await fetch(`${server.url}/v1/videos/${job.id}/content`, { headers: auth });
    const body = await content.json();
    assertEquals(content.status, 502, JSON.stringify(body));
    assertStringIncludes(body.error.message, "not http(s)");
  },
);

Deno.test("one image rule on every route: a data URI must be base64 of a png, jpeg, webp or gif", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const edit = "Qwen/Qwen-Image-Edit-2509";
  for (
    const bad of [
      "data:image/png,notbase64",
      "data:image/png;base64,AAAA",
      "data:text/plain;base64,iVBORw0KGgo=",
    ]
  ) {
    const viaChat = await post(`${server.url}/v1/chat/completions`, {
      model: edit,
      messages: [{
        role: "user",
        content: [{ type: "text", text: "edit" }, { type: "image_url", image_url: { url: bad } }],
      }],
    });
    assertEquals(viaChat.status, 400, `chat: ${bad}`);
    assertEquals((await viaChat.json()).error.code, "invalid_image_url");
    const viaJson = await post(`${server.url}/v1/images/edits`, {
      model: edit,
      prompt: "edit",
      images: [{ image_url: bad }],
    });
    assertEquals(viaJson.status, 400, `edits JSON: ${bad}`);
    assertEquals((await viaJson.json()).error.code, "invalid_image_url");
    const form = new FormData();
    form.set("model", edit);
    form.set("prompt", "edit");
    form.set("image", bad);
    const viaForm = await fetch(`${server.url}/v1/images/edits`, {
      method: "POST",
      headers: { authorization: `Bearer ${TEST_KEY}` },
      body: form,
    });
    assertEquals(viaForm.status, 400, `edits multipart: ${bad}`);
    assertEquals((await viaForm.json()).error.code, "invalid_image_url");
  }
  assertEquals(fake.received.length, 0);
  const good = await post(`${server.url}/v1/images/edits`, {
    model: edit,
    prompt: "edit",
    images: [{ image_url: PNG_DATA_URI }],
  });
  assertEquals(good.status, 200);
  await good.body?.cancel();
});

Deno.test("multipart edits count their images before converting any", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  // The fourth file is no image at all: the count is refused first.
  const { body, type } = multipart({ prompt: "edit", model: "Qwen/Qwen-Image-Edit-2509" }, [
    PNG_SIGNATURE,
    PNG_SIGNATURE,
    PNG_SIGNATURE,
    encoder.encode("not an image"),
  ]);
  const res = await fetch(`${server.url}/v1/images/edits`, {
    method: "POST",
    headers: { authorization: `Bearer ${TEST_KEY}`, "content-type": type },
    body,
  });
  assertEquals(res.status, 400);
  assertEquals((await res.json()).error.code, "too_many_images");
});

Deno.test("printed lines: no URL credentials, and every line of ours is JSON with LOG_FORMAT=json", async () => {
  const server = await spawnMain([], {
    SILICONFLOW_BASE_URL: "http://proxyuser:s3cret-pass@127.0.0.1:9/v1",
    LOG_FORMAT: "json",
  });
  const res = await post(`${server.url}/v1/chat/completions`, simpleChat);
  await res.body?.cancel();
  await server.stop("SIGTERM");
  const output = await server.output;
  assert(!output.includes("s3cret-pass") && !output.includes("proxyuser"), output);
  assertStringIncludes(output, "http://127.0.0.1:9/v1");
  const ours = output.split("\n").filter((line) =>
    line.trim() && !line.startsWith("warning: Detected export default")
  );
  assert(ours.length >= 3, output);
  for (const line of ours) JSON.parse(line);
});
