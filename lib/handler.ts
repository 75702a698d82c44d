/**
 * The server as one function from `Request` to `Response`: request ids, CORS, routing, the
 * error boundary and the per-request log line. `main.ts` and `mod.ts` build on it.
 * @module
 */
import { BodyBudget, BodyShare } from "./body_budget.ts";
import type { Config } from "./config.ts";
import { finalError, jsonResponse, type RequestContext, type ServerStats } from "./context.ts";
import { createDemoUpstream, DEMO_IMAGE_PREFIX } from "./demo_upstream.ts";
import { ApiError, errorResponse } from "./errors.ts";
import { MAX_N } from "./generation.ts";
import { KeyPool } from "./keys.ts";
import { createLogger, type Logger } from "./logger.ts";
import { ROUTES } from "./routes.ts";
import { SiliconFlowClient, TRACE_HEADER } from "./siliconflow.ts";
import { VERSION } from "./version.ts";

/** Dependencies of {@link createHandler}; everything but `config` has a default. */
export interface HandlerOptions {
  /** The configuration (see `loadConfig`). */
  config: Config;
  /** The fetch used for upstream calls. */
  fetch?: typeof fetch;
  /** Where log records go. */
  logger?: Logger;
  /** The clock. */
  now?: () => number;
  /**
   * Aborting it stops every in-flight generation: streamed answers end with an error event,
   * others with a 503. `main.ts` aborts it when the shutdown grace has run out.
   */
  shutdownSignal?: AbortSignal;
}

/** A request handler, as `Deno.serve` and `export default { fetch }` take it. */
export type Handler = (request: Request) => Promise<Response>;

const CORS_HEADERS: Record<string, string> = {
  "access-control-allow-origin": "*",
  "access-control-expose-headers": `x-request-id, ${TRACE_HEADER}, retry-after`,
};

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** Builds the server's request handler. */
export function createHandler(options: HandlerOptions): Handler {
  const { config } = options;
  const now = options.now ?? Date.now;
  const logger = options.logger ?? createLogger(config.logFormat);
  const demo = config.demo ? createDemoUpstream() : undefined;
  // In demo mode upstream calls never leave the process: the stand-in answers them directly.
  const upstreamFetch: typeof fetch = demo
    ? (input, init) => demo(new Request(input, init))
    : options.fetch ?? globalThis.fetch;
  const client = new SiliconFlowClient({
    fetch: demo ? upstreamFetch : options.fetch,
    timeoutMs: config.upstreamTimeoutMs,
    // Each generation makes up to MAX_N upstream calls.
    maxInFlight: config.maxConcurrency * MAX_N,
    secrets: config.siliconflowKeys,
  });
  const keyPool = config.keyMode === "pass-through"
    ? undefined
    : new KeyPool(config.siliconflowKeys, now, logger);
  const stats: ServerStats = { generations: 0, streams: 0 };
  const bodyBudget = new BodyBudget(config.maxBodyBufferBytes);
  const shutdownSignal = options.shutdownSignal ?? new AbortController().signal;
  const mode = config.demo ? "demo" : config.keyMode;

  return async (request) => {
    const started = now();
    const url = new URL(request.url);
    const incomingId = request.headers.get("x-request-id");
    const requestId = incomingId && REQUEST_ID.test(incomingId) ? incomingId : crypto.randomUUID();
    const ctx: RequestContext = {
      request,
      url,
      requestId,
      params: {},
      config,
      now,
      logger,
      log: {},
      client,
      baseUrl: demo ? `${url.origin}/demo/v1` : config.baseUrl,
      upstreamFetch,
      keyPool,
      stats,
      signal: AbortSignal.any([request.signal, shutdownSignal]),
      shutdownSignal,
      bodyShare: new BodyShare(bodyBudget),
    };

    let response: Response;
    if (request.method === "OPTIONS") {
      response = new Response(null, {
        status: 204,
        headers: {
          "access-control-allow-methods": "GET, POST, OPTIONS",
          "access-control-allow-headers": request.headers.get("access-control-request-headers") ??
            "authorization, content-type, x-request-id",
          "access-control-max-age": "86400",
        },
      });
    } else if (request.method === "GET" && url.pathname === "/healthz") {
      response = jsonResponse({
        status: shutdownSignal.aborted ? "stopping" : "ok",
        version: VERSION,
        mode,
        in_flight: { ...stats },
        upstream_keys: keyPool?.status().map((k) => k.state),
        upstream_keys_back_in_s: keyPool?.status().map((k) => k.back_in_s),
      });
    } else if (demo && request.method === "GET" && url.pathname.startsWith(DEMO_IMAGE_PREFIX)) {
      response = await demo(request);
    } else {
      response = await route(ctx);
    }

    const headers = new Headers(response.headers);
    for (const [k, v] of Object.entries(CORS_HEADERS)) headers.set(k, v);
    headers.set("x-request-id", requestId);
    if (ctx.log.traceId && !ctx.streamDone) headers.set(TRACE_HEADER, ctx.log.traceId);
    const final = new Response(response.body, { status: response.status, headers });

    const logLine = (status: number) =>
      logger({
        level: status >= 500 && status !== 502 && status !== 504 ? "error" : "info",
        msg: `${request.method} ${url.pathname}`,
        status,
        ms: now() - started,
        model: ctx.log.model,
        trace: ctx.log.traceId,
        outcome: ctx.log.outcome,
        req: requestId,
      });
    if (ctx.streamDone) {
      ctx.streamDone.then((status) => {
        ctx.bodyShare.release();
        logLine(status);
      });
    } else {
      ctx.bodyShare.release();
      logLine(response.status);
    }
    return final;
  };
}

async function route(ctx: RequestContext): Promise<Response> {
  const { request, url } = ctx;
  let pathMatched = false;
  try {
    for (const r of ROUTES) {
      const match = r.pattern.exec({ pathname: url.pathname });
      if (!match) continue;
      pathMatched = true;
      if (r.method !== request.method) continue;
      for (const [k, v] of Object.entries(match.pathname.groups)) {
        try {
          ctx.params[k] = v === undefined ? undefined : decodeURIComponent(v);
        } catch {
          ctx.params[k] = v;
        }
      }
      return await r.handle(ctx);
    }
    throw pathMatched
      ? new ApiError(405, `${request.method} is not allowed on ${url.pathname}`, {
        code: "method_not_allowed",
      })
      : new ApiError(404, `No route for ${request.method} ${url.pathname}`, { code: "not_found" });
  } catch (err) {
    const error = finalError(ctx, err);
    ctx.log.outcome = error.code ?? undefined;
    request.body?.cancel().catch(() => {});
    // After a body that was too slow or too large the connection is not reused.
    const closing = error.status === 408 || error.status === 413;
    return errorResponse(error, closing ? { connection: "close" } : {});
  }
}
