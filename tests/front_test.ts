/**
 * The front door: `deploy/Caddyfile` run as it is shipped (`caddy run`), in front of the real
 * server, on loopback ports. It closes what Deno.serve cannot (a connection that never finishes
 * its headers, a stalled upload after its 408), passes streams through unbuffered, keeps image
 * links on its own origin and refuses oversized bodies. Caddy is in Debian; `.ci/run` installs it.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { bigImage, post, startFakeUpstream, startServer, TEST_KEY } from "./_helpers.ts";

const CADDYFILE = new URL("../deploy/Caddyfile", import.meta.url).pathname;
const encoder = new TextEncoder();

const haveCaddy = await new Deno.Command("caddy", { args: ["version"], stdout: "null" })
  .output().then((out) => out.success, () => false);

/** A running Caddy with the shipped Caddyfile. */
interface Front extends AsyncDisposable {
  url: string;
  port: number;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

async function startFront(backend: string, env: Record<string, string> = {}): Promise<Front> {
  const port = freePort();
  const home = await Deno.makeTempDir({ prefix: "front-caddy-" });
  const child = new Deno.Command("caddy", {
    args: ["run", "--config", CADDYFILE, "--adapter", "caddyfile"],
    // Caddy keeps its autosave and certificate folders under HOME: a throwaway one.
    env: { HOME: home, LISTEN: `:${port}`, BIND: "127.0.0.1", BACKEND: backend, ...env },
    clearEnv: true,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const output = (async () => {
    let text = "";
    for (let r = await log.read(); !r.done; r = await log.read()) text += r.value;
    return text;
  })();
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    await output;
    await Deno.remove(home, { recursive: true });
  };
  for (let i = 0;; i++) {
    try {
      const res = await fetch(`${url}/healthz`);
      await res.body?.cancel();
      if (res.ok) break;
    } catch { /* not listening yet */ }
    if (i === 100) {
      await stop();
      throw new Error(`caddy did not start: ${await output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url, port, [Symbol.asyncDispose]: stop };
}

/** What a raw TCP exchange came to: the text received and when the front closed it. */
interface Exchange {
  text: string;
  /** Milliseconds from the first byte sent to the close, or -1 if it was still open. */
  closedAfterMs: number;
}

/** Sends `data` and reads until the peer closes or `waitMs` passes. */
async function rawExchange(port: number, data: string, waitMs: number): Promise<Exchange> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const started = Date.now();
  await conn.write(encoder.encode(data));
  const timer = setTimeout(() => conn.close(), waitMs);
  const buffer = new Uint8Array(16 * 1024);
  let text = "";
  let closedAfterMs = -1;
  try {
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    closedAfterMs = Date.now() - started;
    clearTimeout(timer);
    conn.close();
  } catch { /* closed by the timer: still open */ }
  return { text, closedAfterMs };
}

Deno.test({
  name: "behind deploy/Caddyfile: connections bounded, streams unbuffered, links on the front",
  ignore: !haveCaddy,
}, async (t) => {
  const root = await Deno.makeTempDir({ prefix: "front-store-" });
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    IMAGE_STORE: root,
    KEEPALIVE_MS: "200",
    BODY_TIMEOUT_MS: "1500",
    // As deploy/Caddyfile says: behind the front, its X-Forwarded-* headers are trusted.
    TRUST_PROXY: "true",
  });
  const READ_BODY_MS = 3_000;
  await using front = await startFront(new URL(server.url).host, {
    READ_BODY_TIMEOUT: `${READ_BODY_MS}ms`,
    IDLE_TIMEOUT: "2s",
  });
  const host = `host: 127.0.0.1:${front.port}\r\n`;
  // Started first and checked last: the shipped 10 s header timeout runs while the rest does.
  const halfHeaders = rawExchange(front.port, `GET /healthz HTTP/1.1\r\n${host}`, 20_000);
  const idle = rawExchange(front.port, `GET /healthz HTTP/1.1\r\n${host}\r\n`, 20_000);

  await t.step("image links point at the front's origin and load through it", async () => {
    const res = await post(`${front.url}/v1/images/generations`, {
      model: "Kwai-Kolors/Kolors",
      prompt: "a lighthouse",
      response_format: "url",
    }, { headers: { "x-forwarded-host": "evil.example" } });
    assertEquals(res.status, 200);
    const link: string = (await res.json()).data[0].url;
    assert(link.startsWith(`${front.url}/images/`), link);
    const image = await fetch(link);
    assertEquals([image.status, image.headers.get("content-type")], [200, "image/png"]);
    const bytes = new Uint8Array(await image.arrayBuffer());
    assertEquals([...bytes.subarray(1, 4)], [0x50, 0x4e, 0x47]);
    const head = await fetch(link, { method: "HEAD" });
    assertEquals(head.status, 200);
    assertEquals(head.headers.get("content-length"), String(bytes.byteLength));
    assertEquals(head.headers.get("etag"), image.headers.get("etag"));
    assertEquals(await head.text(), "");
  });

  await t.step(
    "keep-alives reach the client on time, in a stream longer than the body timeout",
    async () => {
      fake.delayMs = READ_BODY_MS + 1_000;
      const res = await post(`${front.url}/v1/chat/completions`, {
        model: "Kwai-Kolors/Kolors",
        stream: true,
        messages: [{ role: "user", content: "a lighthouse" }],
      });
      assertEquals(res.status, 200);
      const arrivals: number[] = [];
      let text = "";
      for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
        arrivals.push(Date.now());
        text += chunk;
      }
      fake.delayMs = 0;
      const gaps = arrivals.slice(1).map((at, i) => at - arrivals[i]);
      assert(arrivals.length >= 10, `only ${arrivals.length} chunks arrived`);
      assert(Math.max(...gaps) < 1_000, `a keep-alive was held back: gaps ${gaps}`);
      assertStringIncludes(text, `${front.url}/images/`);
      assert(text.trimEnd().endsWith("data: [DONE]"));
    },
  );

  await t.step("a client that goes away aborts the SiliconFlow call", async () => {
    fake.delayMs = 30_000;
    const before = fake.aborted();
    const leave = new AbortController();
    const res = await post(`${front.url}/v1/chat/completions`, {
      model: "Kwai-Kolors/Kolors",
      stream: true,
      messages: [{ role: "user", content: "a lighthouse" }],
    }, { signal: leave.signal });
    const reader = res.body!.getReader();
    await reader.read();
    while (fake.inFlight() === 0) await new Promise((r) => setTimeout(r, 20));
    leave.abort();
    await reader.closed.catch(() => {});
    for (let i = 0; i < 150 && fake.aborted() === before; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    fake.delayMs = 0;
    assertEquals(fake.aborted(), before + 1, "the SiliconFlow call went on after the client left");
  });

  await t.step("a 24 MiB edit upload goes through", async () => {
    const form = new FormData();
    form.append("model", "Qwen/Qwen-Image-Edit-2509");
    form.append("prompt", "put them side by side");
    for (let i = 0; i < 3; i++) {
      form.append("image[]", new Blob([bigImage(8 * 1024 * 1024)]), `part-${i}.png`);
    }
    const res = await fetch(`${front.url}/v1/images/edits`, {
      method: "POST",
      headers: { authorization: `Bearer ${TEST_KEY}` },
      body: form,
    });
    assertEquals(res.status, 200, await res.clone().text());
    assertEquals((await res.json()).data.length, 1);
    const sent = fake.received.at(-1)!.body;
    assertEquals([sent.image, sent.image2, sent.image3].every((x) => typeof x === "string"), true);
  });

  await t.step("a declared body over MAX_BODY_BYTES is refused at the front", async () => {
    const seen = server.logs.length;
    const answer = await rawExchange(
      front.port,
      `POST /v1/chat/completions HTTP/1.1\r\n${host}content-type: application/json\r\n` +
        `authorization: Bearer ${TEST_KEY}\r\ncontent-length: 40000000\r\n\r\n{"model"`,
      5_000,
    );
    assert(answer.text.startsWith("HTTP/1.1 413 "), answer.text);
    const body = JSON.parse(answer.text.slice(answer.text.indexOf("\r\n\r\n") + 4));
    assertEquals([body.error.type, body.error.code], [
      "invalid_request_error",
      "request_too_large",
    ]);
    assertStringIncludes(body.error.message, "33554432");
    assert(answer.closedAfterMs >= 0 && answer.closedAfterMs < 1_000, `${answer.closedAfterMs}`);
    assertEquals(server.logs.length, seen, "the oversized body reached the server");
  });

  await t.step(
    "a chunked body over MAX_BODY_BYTES gets the server's 413 through the front",
    async () => {
      const chunk = new Uint8Array(1024 * 1024).fill(0x20);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < 40) controller.enqueue(chunk);
          else controller.close();
        },
      });
      const res = await fetch(`${front.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${TEST_KEY}`, "content-type": "application/json" },
        body,
      });
      assertEquals(res.status, 413);
      assertEquals((await res.json()).error.code, "request_too_large");
    },
  );

  await t.step(
    "a stalled body gets the server's 408 when the server gives it, and is closed with it",
    async () => {
      const stalls = [
        `POST /v1/chat/completions HTTP/1.1\r\n${host}content-type: application/json\r\n` +
        `authorization: Bearer ${TEST_KEY}\r\ncontent-length: 1000\r\n\r\n{"model"`,
        `POST /v1/images/edits HTTP/1.1\r\n${host}authorization: Bearer ${TEST_KEY}\r\n` +
        `content-type: multipart/form-data; boundary=XX\r\ntransfer-encoding: chunked\r\n\r\n` +
        `6\r\n--XX\r\n\r\n`,
      ];
      const answers = await Promise.all(
        stalls.map((data) => rawExchange(front.port, data, 15_000)),
      );
      for (const answer of answers) {
        assert(answer.text.startsWith("HTTP/1.1 408 "), answer.text);
        assertStringIncludes(answer.text, '"code":"request_timeout"');
        // Closed with the server's 408 (BODY_TIMEOUT_MS 1.5 s), not at the front's read_body (3 s).
        assert(
          answer.closedAfterMs >= 0 && answer.closedAfterMs < READ_BODY_MS,
          `still open after ${answer.closedAfterMs} ms`,
        );
      }
    },
  );

  await t.step("an idle keep-alive connection is closed after IDLE_TIMEOUT", async () => {
    const answer = await idle;
    assert(answer.text.startsWith("HTTP/1.1 200 "), answer.text);
    assert(
      answer.closedAfterMs >= 1_500 && answer.closedAfterMs < 4_000,
      `${answer.closedAfterMs}`,
    );
  });

  await t.step("a connection that never finishes its headers is closed within 15 s", async () => {
    const answer = await halfHeaders;
    assert(answer.closedAfterMs >= 0, "still open after 20 s");
    assert(answer.closedAfterMs < 15_000, `closed after ${answer.closedAfterMs} ms`);
  });
  await Deno.remove(root, { recursive: true });
});

Deno.test({
  name: "deploy/Caddyfile: HTTPS with automatic certificates is one line to change",
  ignore: !haveCaddy,
}, async () => {
  const shipped = await Deno.readTextFile(CADDYFILE);
  const siteLine = "http://{$LISTEN::8080} {";
  assertStringIncludes(shipped, `\n${siteLine}\n`);
  const dir = await Deno.makeTempDir({ prefix: "front-https-" });
  try {
    const file = `${dir}/Caddyfile`;
    await Deno.writeTextFile(file, shipped.replace(siteLine, "images.example.com {"));
    const out = await new Deno.Command("caddy", {
      args: ["adapt", "--config", file, "--adapter", "caddyfile"],
      env: { HOME: dir },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(out.success, new TextDecoder().decode(out.stderr));
    const config = JSON.parse(new TextDecoder().decode(out.stdout));
    const servers = Object.values(config.apps.http.servers) as {
      listen: string[];
      routes: { match?: { host?: string[] }[] }[];
      automatic_https?: { disable?: boolean };
    }[];
    assertEquals(servers.map((s) => s.listen), [[":443"]]);
    assertEquals(servers[0].routes[0].match?.[0].host, ["images.example.com"]);
    assertEquals(servers[0].automatic_https?.disable ?? false, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
