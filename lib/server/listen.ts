/**
 * The listening side of `main.ts`: `Deno.serve`, kept alive through a flood of connections and
 * stopped without waiting on clients that stall.
 *
 * - When the accept loop fails (most often `Too many open files` under a connection flood),
 *   `Deno.serve` stops listening and rejects `finished`; left alone, that rejection ends the
 *   process. Here it is logged once per burst and the server listens again on the same address,
 *   retrying with a short backoff until the flood has passed.
 * - `shutdown()` stops listening and waits for the responses still being written, not for the
 *   connections behind them: a client that stalls in the middle of its request body keeps its
 *   connection open after its 408 (`Deno.serve` offers no way to close it), and would otherwise
 *   hold the shutdown until the forced exit.
 * @module
 */
import type { Logger } from "./logger.ts";

/** Options of {@link serveResilient}. */
export interface ResilientServeOptions {
  /** The port; 0 picks a free one (kept when listening again). */
  port: number;
  /** The interface to bind. */
  hostname: string;
  /** Where the accept failures and recoveries are logged. */
  logger: Logger;
  /** Called once, when the server first listens. */
  onListen?: (addr: Deno.NetAddr) => void;
  /** The first wait before listening again; it doubles up to 2 s. Default 100 ms. */
  retryMs?: number;
}

/** A server started by {@link serveResilient}. */
export interface ResilientServer {
  /** The address it listens on. */
  readonly addr: Deno.NetAddr;
  /** Stops listening; resolves when every response has been written (or failed). */
  shutdown(): Promise<void>;
}

const MAX_RETRY_MS = 2_000;

/** Serves `handler` like `Deno.serve`, listening again whenever the accept loop fails. */
export function serveResilient(
  options: ResilientServeOptions,
  handler: (request: Request) => Response | Promise<Response>,
): ResilientServer {
  const { logger } = options;
  // The responses still being written, and who waits for their count to reach zero.
  let inFlight = 0;
  let whenIdle: (() => void) | undefined;
  const settle = () => {
    if (--inFlight === 0) whenIdle?.();
  };
  const wrapped: Deno.ServeHandler<Deno.NetAddr> = (request, info) => {
    inFlight++;
    info.completed.then(settle, settle);
    return handler(request);
  };
  let stopping = false;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let failedAt = 0;

  const listen = (port: number, onListen: (addr: Deno.NetAddr) => void): Deno.HttpServer => {
    const server = Deno.serve({ port, hostname: options.hostname, onListen }, wrapped);
    server.finished.catch((err: unknown) => {
      if (stopping) return;
      failedAt = Date.now();
      logger({
        level: "error",
        msg: "accept loop failed; listening again once connections free up",
        error: err instanceof Error ? err.message.split("\n")[0] : String(err),
      });
      relisten(options.retryMs ?? 100);
    });
    return server;
  };

  let current = listen(options.port, (addr) => options.onListen?.(addr));
  const addr = current.addr as Deno.NetAddr;

  // While the flood lasts, binding fails too (no descriptor for the socket); each failure in
  // the same burst is retried quietly.
  const relisten = (waitMs: number) => {
    retryTimer = setTimeout(() => {
      if (stopping) return;
      try {
        current = listen(addr.port, () => {});
        logger({
          level: "warn",
          msg: "listening again after accept failures",
          port: addr.port,
          ms: Date.now() - failedAt,
        });
      } catch {
        relisten(Math.min(waitMs * 2, MAX_RETRY_MS));
      }
    }, waitMs);
  };

  return {
    addr,
    async shutdown() {
      stopping = true;
      clearTimeout(retryTimer);
      // Either every connection closes, or every response has been written: stalled request
      // bodies do not hold the process.
      const idle = new Promise<void>((resolve) => whenIdle = resolve);
      if (inFlight === 0) whenIdle!();
      await Promise.race([current.shutdown(), idle]);
    },
  };
}
