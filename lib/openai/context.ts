/**
 * What a route handler of the OpenAI surface gets: the request's own state, and one reference to
 * the {@link App}, built once per server, for everything server-wide.
 * @module
 */
import type { Config } from "../config.ts";
import type { GenerationPlan } from "../generation/plan.ts";
import type { ModelSpec } from "../generation/registry.ts";
import { resolveModel } from "../generation/registry.ts";
import type { GenerationSlots } from "../generation/slots.ts";
import type { BodyLimits } from "../server/body.ts";
import type { BodyBudget } from "../server/body_budget.ts";
import { type ApiError, finalError } from "../server/errors.ts";
import type { Logger } from "../server/logger.ts";
import type { Exchange } from "../server/pipeline.ts";
import type { UpstreamResult } from "../siliconflow/client.ts";
import type { UpstreamAuth } from "../siliconflow/keys.ts";
import type { Upstream } from "../siliconflow/upstream.ts";

/** The server, built once: configuration, clock, logger, the upstream side and the counters. */
export interface App {
  /** The configuration. */
  readonly config: Config;
  /** The clock (ms since the epoch). */
  readonly now: () => number;
  /** The logger. */
  readonly logger: Logger;
  /** SiliconFlow (or the stand-in), its keys and image downloads. */
  readonly upstream: Upstream;
  /** `MAX_CONCURRENCY` generation slots. */
  readonly slots: GenerationSlots;
  /** Streamed answers still open. */
  readonly streams: { count: number };
  /** `MAX_BODY_BUFFER_BYTES`: request-body bytes held at once. */
  readonly bodyBudget: BodyBudget;
  /** Aborted when the server's shutdown grace runs out. */
  readonly shutdownSignal: AbortSignal;
}

/** One request: its own state, and the app. */
export interface RequestContext extends Exchange {
  /** The server. */
  readonly app: App;
  /** Aborts when the client goes away or the server's shutdown grace runs out. */
  readonly signal: AbortSignal;
}

/** The limits this request's body is read under. */
export function bodyLimits(ctx: RequestContext): BodyLimits {
  const { config } = ctx.app;
  return { maxBytes: config.maxBodyBytes, timeoutMs: config.bodyTimeoutMs, share: ctx.bodyShare };
}

/** The error to answer for a failure of this request (request id added, shutdown told apart). */
export function failure(ctx: RequestContext, err: unknown): ApiError {
  const { shutdownSignal, logger } = ctx.app;
  return finalError({ requestId: ctx.requestId, shutdownSignal, logger }, err);
}

/** Resolves the requested model (alias or id) and notes it for the log line. */
export function requestedModel(
  ctx: RequestContext,
  id: unknown,
  options: { withImages: boolean; param?: string },
): ModelSpec {
  const model = resolveModel(ctx.app.config.modelAliases, id, options);
  ctx.log.model = model.id;
  return model;
}

/** A function making one upstream call with this request's key, cancellation and trace id. */
export function upstreamCaller(
  ctx: RequestContext,
  auth: UpstreamAuth,
  signal: AbortSignal,
): (body: Record<string, unknown>) => Promise<UpstreamResult> {
  return ctx.app.upstream.caller({
    auth,
    signal,
    origin: ctx.url.origin,
    onTraceId: (id) => (ctx.log.traceId = id),
  });
}

/** The `X-Ignored-Params` header, when the plan dropped fields the model does not take. */
export function ignoredHeaders(plan: GenerationPlan): Record<string, string> {
  return plan.ignored.length ? { "x-ignored-params": plan.ignored.join(", ") } : {};
}

/** The line said under the images when the plan dropped fields. */
export function ignoredNote(plan: GenerationPlan): string[] {
  if (!plan.ignored.length) return [];
  const fields = plan.ignored.join(", ");
  return [
    `Ignored ${fields}: ${plan.model.id} does not take ${plan.ignored.length > 1 ? "them" : "it"}.`,
  ];
}
