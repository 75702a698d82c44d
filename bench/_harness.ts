/**
 * What every benchmark section shares: the fake SiliconFlow (instant or delayed answers, plain
 * HTTP/1.1 and HTTPS with HTTP/2), the processes under test (the server running `main.ts`, the
 * original Worker on `deno serve`, and minimal servers that show Deno's own floor), `/proc`
 * readings, load loops and the result table.
 */
import { upstreamRules } from "../lib/generation/schemas.ts";
import { createDemoUpstream } from "../lib/demo/upstream.ts";
import { mainCommand, spawnMain } from "../tests/_spawn.ts";

export const SMOKE = Deno.args.includes("--smoke");
/** Rounds per figure (the median is reported). */
export const RUNS = SMOKE ? 1 : 3;
export const KEY = "sk-bench-0000000000000000000000000000";

// ---- the fake SiliconFlow: instant or delayed answers, plus one big image for b64 delivery ----
/** What the fake does; sections set these and put them back. */
export const knobs = {
  delayMs: 0,
  image: "small" as "small" | "2mb" | "4mb",
  /** How long the fake's video jobs take. */
  videoMs: 4_000,
  /** Video status checks the fake has answered. */
  statusCalls: 0,
};
export const BIG_IMAGE: Uint8Array<ArrayBuffer> = (() => {
  const bytes = new Uint8Array(4 * 1024 * 1024);
  for (let i = 0; i < bytes.length; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, i + 65536));
  }
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return bytes;
})();
/** A 2 MB image for the image-store rows. */
export const IMAGE_2MB: Uint8Array<ArrayBuffer> = BIG_IMAGE.subarray(0, 2 * 1024 * 1024);
const demo = createDemoUpstream({ rules: upstreamRules, videoMs: () => knobs.videoMs });
const fakeHandler = async (req: Request) => {
  const url = new URL(req.url);
  if (url.pathname === "/big.png") {
    return new Response(BIG_IMAGE, { headers: { "content-type": "image/png" } });
  }
  if (url.pathname === "/2mb.png") {
    return new Response(IMAGE_2MB, { headers: { "content-type": "image/png" } });
  }
  if (url.pathname.endsWith("/video/status")) knobs.statusCalls++;
  if (!url.pathname.endsWith("/images/generations")) return demo(req);
  await req.arrayBuffer();
  if (knobs.delayMs) await new Promise((r) => setTimeout(r, knobs.delayMs));
  const image = knobs.image === "4mb"
    ? `${url.origin}/big.png`
    : knobs.image === "2mb"
    ? `${url.origin}/2mb.png`
    : `${url.origin}/demo/images/64x64/1.png`;
  return Response.json({ images: [{ url: image }], seed: 1 }, {
    headers: { "x-siliconcloud-trace-id": "bench" },
  });
};
// Plain HTTP/1.1: one upstream connection per call in flight.
const fake = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, fakeHandler);
export const FAKE = `http://127.0.0.1:${fake.addr.port}/v1`;
// HTTPS with HTTP/2, as SiliconFlow's API is reached: calls share one multiplexed connection.
// The certificate in bench/tls/ is a throwaway for localhost, trusted only via DENO_CERT.
const TLS_DIR = new URL("./tls/", import.meta.url).pathname;
const fakeTls = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen() {},
  cert: Deno.readTextFileSync(`${TLS_DIR}cert.pem`),
  key: Deno.readTextFileSync(`${TLS_DIR}key.pem`),
}, fakeHandler);
export const FAKE_TLS = `https://localhost:${fakeTls.addr.port}/v1`;

/** Stops the fakes (at the end of the run). */
export async function stopFakes(): Promise<void> {
  await fake.shutdown();
  await fakeTls.shutdown();
}

// ---- the processes under test ----
/** A server process under test. */
export interface Child {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** Its process id, for `/proc`. */
  pid: number;
  /** Kills it and waits. */
  stop(): Promise<unknown>;
}

/** The server: `main.ts` as `deno task start` runs it, against the fake. */
export async function startProxy(
  env: Record<string, string> = {},
  baseUrl = FAKE,
  permissions: string[] = [],
  v8Flags?: string[],
): Promise<Child> {
  const server = await spawnMain(["--base-url", baseUrl], {
    LOG_FORMAT: "json",
    DENO_CERT: `${TLS_DIR}ca.pem`,
    IMAGE_STORE: "none",
    ...env,
  }, { permissions, v8Flags });
  return { url: server.url, pid: server.child.pid, stop: () => server.stop() };
}

const WORKER = new URL("./baseline/seed_worker.js", import.meta.url).pathname;

/** A free loopback port (the processes that `deno serve` starts are told theirs). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Waits, polling every 2 ms, until `url` answers; the time from `since` in ms. */
export async function firstAnswer(url: string, since: number): Promise<number> {
  for (let i = 0; i < 10_000; i++) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return performance.now() - since;
    } catch {
      await new Promise((r) => setTimeout(r, 2));
    }
  }
  throw new Error(`${url} never answered`);
}

/** A module on `deno serve` (the Worker, or a minimal server), with its environment. */
function startServed(
  module: string,
  env: Record<string, string>,
  flags: string[] = [],
): Child & { started: number } {
  const port = freePort();
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "serve",
      "--allow-net",
      "--allow-env",
      ...flags,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      module,
    ],
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    started,
    async stop() {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await child.status;
    },
  };
}

/** The original Worker (the baseline), on `deno serve`, against the fake. */
export async function startWorker(baseUrl = FAKE): Promise<Child & { started: number }> {
  const worker = startServed(WORKER, {
    SILICONFLOW_API_URL: `${baseUrl}/images/generations`,
    DENO_CERT: `${TLS_DIR}ca.pem`,
  });
  await firstAnswer(`${worker.url}/v1/models`, worker.started);
  return worker;
}

/** The server's start: spawned as `deno task start` does, then polled every 2 ms. */
export async function timeProxyStart(flags = false): Promise<number> {
  const port = freePort();
  const started = performance.now();
  const settings = { PORT: String(port), HOST: "127.0.0.1", SILICONFLOW_BASE_URL: FAKE };
  // Configured through the environment, as `deno task start` is; or with the binary's flags.
  const child = flags
    ? mainCommand(["--port", settings.PORT, "--host", settings.HOST, "--base-url", FAKE], {
      IMAGE_STORE: "none",
    }).spawn()
    : mainCommand([], { IMAGE_STORE: "none", ...settings }).spawn();
  const ms = await firstAnswer(`http://127.0.0.1:${port}/v1/models`, started);
  child.kill("SIGKILL");
  await child.output();
  return ms;
}

/** The Worker's start, the same way. */
export async function timeWorkerStart(): Promise<number> {
  const worker = startServed(WORKER, { SILICONFLOW_API_URL: `${FAKE}/images/generations` });
  const ms = await firstAnswer(`${worker.url}/v1/models`, worker.started);
  await worker.stop();
  return ms;
}

/** A minimal server written inline (Deno's own floor for a measurement), on `deno serve`. */
export async function startMinimal(
  source: string,
  env: Record<string, string> = {},
  flags: string[] = [],
): Promise<Child> {
  const file = await Deno.makeTempFile({ suffix: ".js" });
  await Deno.writeTextFile(file, source);
  const server = startServed(file, env, flags);
  await firstAnswer(`${server.url}/healthz`, server.started);
  return {
    ...server,
    async stop() {
      await server.stop();
      await Deno.remove(file);
    },
  };
}

// ---- readings ----
export function procStatus(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
    Deno.readTextFileSync(`/proc/${pid}/status`),
  );
  return m ? Number(m[1]) * 1024 : NaN;
}
/** CPU seconds (user + system) the process has used. */
export function cpuSeconds(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime in clock ticks (100 Hz)
}
export const peakRss = (pid: number): number => procStatus(pid, "VmHWM");

export const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
export const pct = (xs: number[], p: number): number =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
export const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
export const ratio = (x: number): string => `${x.toFixed(2)}×`;

export const chatBody = (extra: Record<string, unknown> = {}): string =>
  JSON.stringify({
    model: "Qwen/Qwen-Image",
    messages: [{ role: "user", content: "a cat" }],
    ...extra,
  });

/** Reads a response and fails the run loudly if it is not a success. */
export async function expectOk(res: Response): Promise<ArrayBuffer> {
  const body = await res.arrayBuffer();
  if (!res.ok) {
    throw new Error(`HTTP ${res.status}: ${new TextDecoder().decode(body).slice(0, 300)}`);
  }
  return body;
}

export function timedSync(fn: () => unknown): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** One load run's figures. */
export interface LoadResult {
  p50: number;
  p99: number;
  rps: number;
}

/** Sends `total` requests with `concurrency` in flight; latencies in ms and requests per second. */
export async function load(
  total: number,
  concurrency: number,
  send: () => Promise<Response>,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      next++;
      latencies.push(
        await timed(async () => {
          const res = await send();
          await res.arrayBuffer();
          if (!res.ok) throw new Error(`status ${res.status}`);
        }),
      );
    }
  }));
  return {
    p50: pct(latencies, 0.5),
    p99: pct(latencies, 0.99),
    rps: total / ((performance.now() - started) / 1000),
  };
}

/** A POST of a chat request to `url`. */
export const postChat = (url: string, body: string = chatBody()): () => Promise<Response> => () =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    body,
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
  });

// ---- the table ----
export const rows: string[][] = [];
export const row = (name: string, value: string, target: string, met: boolean | null): number =>
  rows.push([name, value, target, met === null ? "—" : met ? "met" : "**missed**"]);
