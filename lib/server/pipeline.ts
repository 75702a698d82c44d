/**
 * The request pipeline, the same for every route: request id, route match, the error boundary,
 * CORS and id headers, the per-request log line, and the body budget given back. Route handlers
 * only turn a context into a response.
 * @module
 */
import type { ApiError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import { errorResponse } from "./response.ts";
import { matchRoute, type Route } from "./router.ts";

/** Fields of a request's log line, filled in as it is handled. */
export interface LogFields {
  /** The model that was resolved. */
  model?: string;
  /** The upstream trace id. */
  traceId?: string;
  /** An error code, when it failed. */
  outcome?: string;
}

/** What the pipeline needs of every request's context. */
export interface Exchange {
  /** The incoming request. */
  readonly request: Request;
  /** Its path, for routing and the log line. */
  readonly pathname: string;
  /** `X-Request-Id` of this request. */
  readonly requestId: string;
  /** Fields for the request's log line. */
  readonly log: LogFields;
  /** For streamed answers: resolves with the final status when the stream ends. */
  streamDone?: Promise<number>;
  /** Gives back what the request held (its body budget, its abort signal), once it is answered. */
  finish(): void;
}

/** Options of {@link createPipeline}. */
export interface PipelineOptions<C extends Exchange> {
  /** The route table. */
  routes: readonly Route<C>[];
  /** Builds the context of one request. */
  context: (request: Request, pathname: string, requestId: string) => C;
  /** The error to answer for a failure (with the request id, shutdown told apart). */
  failure: (ctx: C, err: unknown) => ApiError;
  /** Where the log lines go. */
  logger: Logger;
  /** The clock. */
  now: () => number;
  /** The upstream's trace-id header, passed on to the client and named in CORS. */
  traceHeader: string;
  /** Further response headers that browser clients may read (CORS). */
  exposeHeaders?: readonly string[];
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The answer to a CORS preflight, for an `OPTIONS` route. */
export function preflight(request: Request): Promise<Response> {
  return Promise.resolve(
    new Response(null, {
      status: 204,
      headers: {
        "access-control-allow-methods": "GET, HEAD, POST, PATCH, DELETE, OPTIONS",
        "access-control-allow-headers": request.headers.get("access-control-request-headers") ??
          "authorization, content-type, x-request-id",
        "access-control-max-age": "86400",
      },
    }),
  );
}

/** Builds the server's request handler from a route table. */
export function createPipeline<C extends Exchange>(
  options: PipelineOptions<C>,
): (request: Request) => Promise<Response> {
  const { routes, logger, now, traceHeader } = options;
  const cors: Record<string, string> = {
    "access-control-allow-origin": "*",
    "access-control-expose-headers": ["x-request-id", traceHeader, "retry-after"]
      .concat(options.exposeHeaders ?? []).join(", "),
  };

  const addHeaders = (headers: Headers, ctx: C) => {
    for (const name in cors) headers.set(name, cors[name]);
    headers.set("x-request-id", ctx.requestId);
    if (ctx.log.traceId && !ctx.streamDone) headers.set(traceHeader, ctx.log.traceId);
    return headers;
  };

  const dispatch = async (ctx: C): Promise<Response> => {
    try {
      const { route, params } = matchRoute(routes, ctx.request.method, ctx.pathname);
      return await route.handle(ctx, params);
    } catch (err) {
      const error = options.failure(ctx, err);
      ctx.log.outcome = error.code ?? undefined;
      ctx.request.body?.cancel().catch(() => {});
      // After a body that was too slow or too large the connection is not reused.
      const closing = error.status === 408 || error.status === 413;
      return errorResponse(error, closing ? { connection: "close" } : {});
    }
  };

  return async (request) => {
    const started = now();
    const { pathname } = new URL(request.url);
    const incomingId = request.headers.get("x-request-id");
    const requestId = incomingId && REQUEST_ID.test(incomingId) ? incomingId : crypto.randomUUID();
    const ctx = options.context(request, pathname, requestId);
    const response = await dispatch(ctx);

    // Our own responses take the headers as they are; a fetched one (immutable) is re-wrapped.
    let final = response;
    try {
      addHeaders(response.headers, ctx);
    } catch {
      final = new Response(response.body, {
        status: response.status,
        headers: addHeaders(new Headers(response.headers), ctx),
      });
    }

    // HEAD was answered by the GET route: its headers go out, its body does not. A stream of a
    // declared length (a file) is let go at once. Any other body is left as it is (reading
    // `.body` would turn a string into a stream of unknown length): Deno sends no body for HEAD.
    if (request.method === "HEAD" && final.headers.has("content-length") && final.body) {
      final.body.cancel().catch(() => {});
      final = new Response(null, { status: final.status, headers: final.headers });
    }

    const done = (status: number) => {
      ctx.finish();
      logger({
        level: status >= 500 && status !== 502 && status !== 504 ? "error" : "info",
        msg: `${request.method} ${pathname}`,
        status,
        ms: now() - started,
        model: ctx.log.model,
        trace: ctx.log.traceId,
        outcome: ctx.log.outcome,
        req: requestId,
      });
    };
    if (ctx.streamDone) ctx.streamDone.then(done);
    else done(response.status);
    return final;
  };
}
