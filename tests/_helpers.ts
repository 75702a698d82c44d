/**
 * Shared test helpers: the loopback fake SiliconFlow (built on the demo stand-in, and told to
 * misbehave per test), a raw TCP upstream for connection-level faults, and the real server on an
 * ephemeral port with a capturing logger.
 */
import { type Config, loadConfig } from "../lib/config.ts";
import { upstreamRules, videoRules } from "../lib/generation/schemas.ts";
import type { ListedModel } from "../lib/siliconflow/client.ts";
import { createDemoUpstream } from "../lib/demo/upstream.ts";
import { encodePng } from "../lib/png.ts";
import { noise } from "./_noise.ts";
import { createHandler } from "../lib/handler.ts";
import type { LogRecord } from "../lib/server/logger.ts";

/** A canned answer the fake gives instead of the stand-in's. */
export interface CannedAnswer {
  status: number;
  body: string;
  headers?: Record<string, string>;
  /** Waits before answering. */
  delayMs?: number;
}

/** A request the fake received. */
export interface Received {
  path: string;
  authorization: string | null;
  body: Record<string, unknown>;
}

/** The loopback fake SiliconFlow. */
export interface FakeUpstream extends AsyncDisposable {
  /** `http://127.0.0.1:PORT/v1`. */
  baseUrl: string;
  /** Every generation request received. */
  received: Received[];
  /** Answers queued for the next generation requests; the stand-in answers when empty. */
  queue: CannedAnswer[];
  /** Generation requests being worked on right now. */
  inFlight(): number;
  /** Generation requests whose client went away before the answer. */
  aborted(): number;
  /** Delay of the stand-in's answers. */
  delayMs: number;
  /** Extra models the fake lists at GET /models and serves without the registry's rules. */
  listing: ListedModel[];
  /** How many model lists it has answered. */
  listCalls(): number;
  /** When true, its image and video links answer 404, as SiliconFlow's do when they lapse. */
  expired: boolean;
  /** How long its video jobs take, submit to done (ms). */
  videoMs: number;
  /** When set, its video jobs fail with this reason. */
  videoFail?: string;
  /** Every video status call: the job's request id and the key it came with. */
  statusCalls: { requestId: string; authorization: string | null }[];
  /** Every download of a video it made (its path). */
  videoDownloads: string[];
  /**
   * The next `count` video downloads trickle in over `ms`, with no declared length (so they
   * stream into the store); the others are served at once.
   */
  slowVideos: { count: number; ms: number };
  /** The next this many video downloads answer 503 (a passing fault at SiliconFlow's storage). */
  failVideos: number;
  /** When set, a finished video's link is this path on the fake, instead of the MP4's. */
  videoPath?: string;
}

/** Starts the fake on a free loopback port. */
export function startFakeUpstream(): FakeUpstream {
  // Small drawings keep b64_json and data-delivery tests fast; sizes in URLs stay as asked.
  const listing: ListedModel[] = [];
  const demo = createDemoUpstream({
    maxSide: 64,
    rules: upstreamRules,
    videoRules,
    listing: () => listing,
    videoMs: () => fake.videoMs,
  });
  let inFlight = 0;
  let aborted = 0;
  let listCalls = 0;
  const fake: FakeUpstream = {
    baseUrl: "",
    received: [],
    queue: [],
    delayMs: 0,
    listing,
    listCalls: () => listCalls,
    expired: false,
    videoMs: 300,
    statusCalls: [],
    videoDownloads: [],
    slowVideos: { count: 0, ms: 0 },
    failVideos: 0,
    inFlight: () => inFlight,
    aborted: () => aborted,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const blob = /^\/blob\/(\d+)\.png$/.exec(new URL(req.url).pathname);
    // /hops/N/… redirects N times before the image; /hops/to/SCHEME redirects off http(s).
    const hops = /^\/hops\/(\d+|to)\/(.+)$/.exec(new URL(req.url).pathname);
    if (hops) {
      const location = hops[1] === "to"
        ? `${hops[2]}://example.invalid/x.png`
        : hops[1] === "0"
        ? "/blob/64.png"
        : `/hops/${Number(hops[1]) - 1}/x`;
      return new Response(null, { status: 302, headers: { location } });
    }
    if (blob) {
      return new Response(bigImage(Number(blob[1])), { headers: { "content-type": "image/png" } });
    }
    // /noise/N.png is a real PNG of N² random pixels (N = 600 is over a megabyte).
    const noisy = /^\/noise\/(\d{1,4})\.png$/.exec(new URL(req.url).pathname);
    if (noisy) {
      const png = await encodePng(noise(Number(noisy[1])));
      return new Response(png, { headers: { "content-type": "image/png" } });
    }
    // /chunked/N.png streams N bytes with no Content-Length; /broken/N.png breaks off halfway.
    const streamed = /^\/(chunked|broken)\/(\d+)\.png$/.exec(new URL(req.url).pathname);
    if (streamed) return streamedImage(Number(streamed[2]), streamed[1] === "broken");
    if (new URL(req.url).pathname.endsWith("/models")) listCalls++;
    const { pathname } = new URL(req.url);
    if (fake.expired && /^\/demo\/(images|videos)\//.test(pathname)) {
      return new Response("expired", { status: 404 });
    }
    if (pathname.startsWith("/demo/videos/") && req.method === "GET") {
      fake.videoDownloads.push(pathname);
      if (fake.failVideos > 0) {
        fake.failVideos--;
        return new Response("try again", { status: 503 });
      }
      if (fake.slowVideos.count > 0) {
        fake.slowVideos.count--;
        return trickle(await demo(req), fake.slowVideos.ms, req.signal);
      }
    }
    if (pathname.endsWith("/video/status")) {
      const text = await req.text();
      const requestId = String(JSON.parse(text || "{}").requestId);
      fake.statusCalls.push({ requestId, authorization: req.headers.get("authorization") });
      if (fake.videoFail) {
        const failed = { status: "Failed", reason: fake.videoFail, position: 0, results: null };
        return Response.json(failed, { headers: { "x-siliconcloud-trace-id": "fake-trace-1" } });
      }
      const answer = await demo(
        new Request(req.url, { method: "POST", headers: req.headers, body: text }),
      );
      if (!fake.videoPath || !answer.ok) return answer;
      const status = await answer.json();
      for (const video of status.results?.videos ?? []) {
        video.url = new URL(fake.videoPath, req.url).href;
      }
      return Response.json(status);
    }
    const recorded = ["/images/generations", "/video/submit", "/chat/completions"];
    if (!recorded.some((end) => pathname.endsWith(end))) return demo(req);
    const text = await req.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text);
    } catch { /* recorded as empty */ }
    fake.received.push({
      path: new URL(req.url).pathname,
      authorization: req.headers.get("authorization"),
      body,
    });
    const canned = fake.queue.shift();
    const delay = canned?.delayMs ?? fake.delayMs;
    inFlight++;
    try {
      if (delay) {
        const finished = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(true), delay);
          req.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            resolve(false);
          }, { once: true });
        });
        if (!finished) {
          aborted++;
          return new Response(null, { status: 499 });
        }
      }
      if (canned) {
        const noBody = [204, 205, 304].includes(canned.status);
        return new Response(noBody ? null : canned.body, {
          status: canned.status,
          headers: { "x-siliconcloud-trace-id": "fake-trace-1", ...canned.headers },
        });
      }
      return await demo(new Request(req.url, { method: "POST", headers: req.headers, body: text }));
    } finally {
      inFlight--;
    }
  });
  fake.baseUrl = `http://127.0.0.1:${server.addr.port}/v1`;
  return fake;
}

/** A response's body sent in 20 parts over `ms`, with no declared length. */
async function trickle(response: Response, ms: number, signal: AbortSignal): Promise<Response> {
  const bytes = await response.bytes();
  const step = Math.ceil(bytes.length / 20);
  let at = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (at >= bytes.length) return controller.close();
      await new Promise((r) => setTimeout(r, ms / 20));
      if (signal.aborted) return controller.error(signal.reason);
      controller.enqueue(bytes.slice(at, at + step));
      at += step;
    },
  });
  return new Response(body, { headers: { "content-type": "video/mp4" } });
}

/** {@link bigImage} in 64 KiB chunks with no declared length, or breaking off halfway. */
function streamedImage(size: number, breaks: boolean): Response {
  const bytes = bigImage(size);
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (breaks && sent >= size / 2) return controller.error(new Error("broke off"));
      if (sent >= size) return controller.close();
      controller.enqueue(bytes.slice(sent, sent + 65536));
      sent += 65536;
    },
  });
  return new Response(body, { headers: { "content-type": "image/png" } });
}

/** A deterministic "image" of `size` bytes that starts with the PNG signature. */
export function bigImage(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7919) & 0xff;
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].slice(0, size));
  return bytes;
}

/** How the raw TCP upstream misbehaves. */
export type RawFault =
  | "reset-before-headers"
  | "reset-mid-body"
  | "stall-after-headers"
  | "hang"
  | "slow-drip";

/** A TCP server that reads a request and then misbehaves at the HTTP level. */
export function startRawUpstream(fault: RawFault): { baseUrl: string } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const enc = new TextEncoder();
  const serveConn = async (conn: Deno.Conn) => {
    conns.add(conn);
    try {
      const buf = new Uint8Array(65536);
      await conn.read(buf);
      const head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n";
      switch (fault) {
        case "reset-before-headers":
          conn.close();
          conns.delete(conn);
          return;
        case "reset-mid-body":
          await conn.write(enc.encode(`${head}{"images":[{"url":"ht`));
          conn.close();
          conns.delete(conn);
          return;
        case "stall-after-headers":
          await conn.write(enc.encode(head));
          return;
        case "hang":
          return;
        case "slow-drip": {
          await conn.write(enc.encode(head));
          for (const ch of '{"images":[]}') {
            await new Promise((r) => {
              const t = setTimeout(r, 50);
              timers.add(t);
            });
            await conn.write(enc.encode(ch));
          }
          return;
        }
      }
    } catch {
      // The proxy hung up first.
    }
  };
  (async () => {
    try {
      for await (const conn of listener) serveConn(conn);
    } catch { /* closed */ }
  })();
  return {
    baseUrl: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/v1`,
    [Symbol.asyncDispose]() {
      for (const t of timers) clearTimeout(t);
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      listener.close();
      return Promise.resolve();
    },
  };
}

/** The real server on a free loopback port, with its log records captured. */
export interface TestServer extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** The configuration it runs with. */
  config: Config;
  /** Every log record, as objects. */
  logs: LogRecord[];
  /** Every log line, as text. */
  lines: string[];
}

/** Starts the server with `env` as its environment (and, for tests of time, a clock). */
export function startServer(
  env: Record<string, string> = {},
  options: { now?: () => number } = {},
): TestServer {
  // The suites were written for streams that open at once; the hold window has tests of its own.
  // and the image store (which needs a writable folder) is for the tests that ask for one.
  const config = loadConfig((name) => ({ STREAM_HOLD_MS: "0", IMAGE_STORE: "none", ...env })[name]);
  const logs: LogRecord[] = [];
  const lines: string[] = [];
  // Aborted when the test is done with the server: its video poller stops with it.
  const done = new AbortController();
  const handler = createHandler({
    config,
    shutdownSignal: done.signal,
    // An explicit fetch keeps upstream calls on one HTTP client, so the test's resource sanitizer
    // sees no extra clients (the lanes themselves are tested through main.ts).
    fetch: (input, init) => fetch(input, init),
    now: options.now,
    logger: (record) => {
      logs.push(record);
      lines.push(JSON.stringify(record));
    },
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    config,
    logs,
    lines,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      done.abort();
      await handler.close();
      // The log scan: across the whole suite, no key of any kind may reach a log line.
      const keys = [
        TEST_KEY,
        ...`${env.SILICONFLOW_API_KEY ?? ""},${env.PROXY_API_KEYS ?? ""}`.split(","),
      ]
        .map((k) => k.trim()).filter((k) => k.length >= 8);
      for (const line of lines) {
        for (const key of keys) {
          if (line.includes(key)) {
            throw new Error(`a key reached the log: ${line.replace(key, "<key>")}`);
          }
        }
      }
    },
  };
}

/** POSTs JSON with a key. */
export function post(
  url: string,
  body: unknown,
  init: { key?: string | null; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Response> {
  const headers: Record<string, string> = { "content-type": "application/json", ...init.headers };
  if (init.key !== null) headers.authorization = `Bearer ${init.key ?? TEST_KEY}`;
  return fetch(url, {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: init.signal,
  });
}

/** A key that must never show up in a log line or a response. */
export const TEST_KEY = "sk-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0";

/** Reads a server-sent event stream into its `data:` payloads. */
export async function readSse(response: Response): Promise<string[]> {
  const text = await response.text();
  return text.split("\n\n").filter((f) => f.trim()).map((f) => {
    if (!f.startsWith("data: ")) throw new Error(`not a data frame: ${JSON.stringify(f)}`);
    return f.slice("data: ".length);
  });
}

/** A tiny valid PNG as a data URI. */
export const PNG_DATA_URI =
  "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

/** Waits until `check` answers something truthy, trying every 50 ms up to `withinMs`. */
export async function until<T>(
  what: string,
  check: () => T | Promise<T>,
  withinMs: number,
): Promise<NonNullable<T>> {
  const end = Date.now() + withinMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > end) throw new Error(`${what}: not within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Makes a managed key with the admin API (the server runs with `ADMIN_API_KEY` = `admin`). */
export async function makeManagedKey(
  url: string,
  admin: string,
  fields: Record<string, unknown>,
): Promise<{ key: string; [field: string]: unknown }> {
  const res = await fetch(`${url}/admin/v1/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify(fields),
  });
  const made = await res.json();
  if (res.status !== 201) throw new Error(`no key made: ${JSON.stringify(made)}`);
  return made;
}
