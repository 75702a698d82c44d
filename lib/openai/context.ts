/**
 * What a route handler of the OpenAI surface gets: the request's own state, and one reference to
 * the {@link App}, built once per server, for everything server-wide.
 * @module
 */
import type { App } from "../app.ts";
import type { BodyLimits, BodyShare } from "../server/body.ts";
import { type ApiError, finalError } from "../server/errors.ts";
import type { Exchange } from "../server/pipeline.ts";

/** One request: its own state, and the app. */
export interface RequestContext extends Exchange {
  /** The server. */
  readonly app: App;
  /** Aborts when the client goes away or the server's shutdown grace runs out. */
  readonly signal: AbortSignal;
  /** The request's share of the body budget. */
  readonly bodyShare: BodyShare;
  /** Its parsed URL (parsed when first asked for: a held stream need not keep it). */
  readonly url: URL;
  /** Aborts `signal`: the client has gone (it cancelled a streamed answer). */
  abort(): void;
}

/** The limits this request's body is read under. */
export function bodyLimits(ctx: RequestContext): BodyLimits {
  const { config } = ctx.app;
  return { maxBytes: config.maxBodyBytes, timeoutMs: config.bodyTimeoutMs, share: ctx.bodyShare };
}

/** The error to answer for a failure of this request (request id added, shutdown told apart). */
export function failure(ctx: RequestContext, err: unknown): ApiError {
  const { shutdownSignal, logger } = ctx.app;
  return finalError(err, { requestId: ctx.requestId, shutdownSignal, logger });
}
