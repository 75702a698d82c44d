/**
 * The server entry point. `deno task start` and the compiled binary run it, and it calls
 * `Deno.serve`; `deno serve main.ts` and Deno Deploy use its default export instead.
 * @module
 */
import { helpText, parseCli } from "./lib/cli.ts";
import { ConfigError, displayUrl, loadConfig } from "./lib/config.ts";
import { createHandler } from "./lib/handler.ts";
import { preloadRoutes } from "./lib/openai/routes.ts";
import { missingPermission } from "./lib/permissions.ts";
import { serveResilient } from "./lib/server/listen.ts";
import { createLogger, stdoutLines } from "./lib/server/logger.ts";
import { soon, warmTimers } from "./lib/server/deadline.ts";
import { VERSION } from "./lib/version.ts";

/** Start-up failures are printed before the configuration exists: LOG_FORMAT is read raw. */
function fail(message: string, flags: Record<string, string> = {}): never {
  const raw = flags.LOG_FORMAT ?? Deno.env.get("LOG_FORMAT");
  const line = `siliconflow-image-proxy: ${message}`;
  console.error(
    raw?.trim().toLowerCase() === "json"
      ? JSON.stringify({ time: new Date().toISOString(), level: "error", msg: line })
      : line,
  );
  Deno.exit(2);
}

const cli = (() => {
  try {
    return parseCli(import.meta.main ? Deno.args : []);
  } catch (err) {
    if (err instanceof ConfigError && import.meta.main) fail(err.message);
    throw err;
  }
})();
if (cli.help) {
  console.log(helpText(VERSION));
  Deno.exit(0);
}
if (cli.version) {
  console.log(VERSION);
  Deno.exit(0);
}

const config = (() => {
  try {
    return loadConfig((name) => cli.env[name] ?? Deno.env.get(name));
  } catch (err) {
    if (err instanceof ConfigError && import.meta.main) fail(err.message, cli.env);
    throw err;
  }
})();

// A path or service the user configured that this process may not use stops it here, saying what
// to grant, rather than failing quietly later.
if (import.meta.main) {
  const denied = missingPermission(
    config,
    (name) => (cli.env[name] ?? Deno.env.get(name)) !== undefined,
  );
  if (denied) fail(denied, cli.env);
}

// Aborted when the shutdown grace runs out: in-flight generations then end with an error.
const shutdown = new AbortController();
const logger = createLogger(config.logFormat, undefined, undefined, config.logLevel);
// The start-up and shutdown lines are printed whatever LOG_LEVEL says.
const announcer = createLogger(config.logFormat);
const handler = createHandler({
  config,
  logger,
  shutdownSignal: shutdown.signal,
  resumeVideoJobs: true,
});

/** A line of the server's own (start-up, shutdown): plain text, or a JSON record. */
function say(msg: string): void {
  if (config.logFormat === "json") announcer({ level: "info", msg });
  else stdoutLines(msg);
}

/** The start-up line: where it listens, against what, in which key mode. */
function announce({ hostname, port }: Deno.NetAddr, how: string): void {
  // What start-up left out loads once the first requests are answered: the routes that validate
  // with zod (see lib/openai/routes.ts) and the platform's timers (see lib/server/deadline.ts).
  soon(PRELOAD_AFTER_MS, () => {
    warmTimers();
    preloadRoutes().catch(() => {});
  });
  const shown = hostname === "0.0.0.0" ? "localhost" : hostname;
  say(
    `siliconflow-image-proxy ${VERSION} listening on http://${shown}:${port}/v1 (${how})` +
      (config.demo
        ? " (demo mode: no key or network needed)"
        : ` → ${displayUrl(config.baseUrl)}`) +
      ` [keys: ${config.keyMode}]`,
  );
}

/** How long after listening the rest of the server loads. */
const PRELOAD_AFTER_MS = 20;

// `deno serve` calls this before any timer runs; the block below then leaves the serving to it.
let servedByDenoServe = false;

/** The handler for `deno serve main.ts` and Deno Deploy. */
const serveExport: Deno.ServeDefaultExport = {
  fetch: handler,
  onListen(addr) {
    servedByDenoServe = true;
    announce(addr as Deno.NetAddr, "deno serve");
  },
};
export default serveExport;

if (import.meta.main && !Deno.env.get("DENO_DEPLOYMENT_ID")) {
  soon(0, () => {
    if (servedByDenoServe) return;
    const server = serveResilient({
      port: config.port,
      hostname: config.host,
      logger,
      onListen: (addr: Deno.NetAddr) => announce(addr, "Deno.serve"),
    }, handler);
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      say(
        `${signal}: no longer accepting; in-flight generations have ${config.shutdownGraceMs} ms`,
      );
      const grace = setTimeout(() => shutdown.abort(), config.shutdownGraceMs);
      // After the grace, streams end with an error event at once; give them a moment to flush.
      const hard = setTimeout(() => Deno.exit(1), config.shutdownGraceMs + 5_000);
      // Jobs go to the next process (or another instance) now, not when a lease would lapse.
      const handedOver = handler.handOver().catch(() => {});
      await server.shutdown();
      await handedOver;
      await handler.close().catch(() => {});
      clearTimeout(grace);
      clearTimeout(hard);
      Deno.exit(0);
    };
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      try {
        Deno.addSignalListener(signal, () => stop(signal));
      } catch {
        // SIGTERM cannot be listened for on Windows.
      }
    }
  });
}
