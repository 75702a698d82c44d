/**
 * What a route handler of the OpenAI surface gets: the request's own state, and one reference to
 * the {@link App}, built once per server, for everything server-wide.
 * @module
 */
import { errorText } from "../server/logger.ts";
import type { GenerationOutcome, GenerationPlan } from "../generation/plan.ts";
import type { ModelSpec } from "../generation/registry.ts";
import { genericModel, resolveModel } from "../generation/registry.ts";
import type { BodyLimits } from "../server/body.ts";
import { ApiError, CLIENT_CLOSED, finalError } from "../server/errors.ts";
import { type EventEncoder, type EventSink, eventStreamResponse } from "../server/event_stream.ts";
import type { Exchange } from "../server/pipeline.ts";
import type { UpstreamResult } from "../siliconflow/client.ts";
import { authorize, bearerKey, type UpstreamAuth } from "../siliconflow/keys.ts";
import type { KeyRecord, QuotaStore } from "../quota/store.ts";
import type { BodyShare } from "../server/body_budget.ts";
import type { App } from "../app.ts";

/** Who called: the key that pays upstream, and a KV-managed access key's record if one was used. */
export type RequestAuth = UpstreamAuth & { account?: KeyRecord };

/**
 * Checks the caller's key: the key modes of `siliconflow/keys.ts` first, then, with the admin API
 * on, the access keys managed on KV. A KV that cannot be reached fails those keys closed (503);
 * keys from the environment keep working.
 */
export async function authorizeRequest(ctx: RequestContext): Promise<RequestAuth> {
  try {
    return authorize(ctx.request.headers, ctx.app.config);
  } catch (err) {
    const quota = ctx.app.quota;
    const presented = bearerKey(ctx.request.headers);
    if (!quota || !presented || !(err instanceof ApiError) || err.status !== 401) throw err;
    const account = await quota.find(presented);
    if (!account) throw err;
    if (account.disabled) {
      throw new ApiError(401, "This access key has been disabled by the server's owner.", {
        code: "invalid_api_key",
      });
    }
    if (account.expires_at && Date.parse(account.expires_at) <= ctx.app.now()) {
      throw new ApiError(401, `This access key expired at ${account.expires_at}.`, {
        code: "invalid_api_key",
      });
    }
    return { kind: "pool", account };
  }
}

/**
 * Runs a generation on a KV-managed key's quota: the model must be one the key may use, the
 * images are reserved first (429 past a limit), what was not made is given back, and the usage
 * is recorded. Other callers run unmetered.
 */
export function metered(
  ctx: RequestContext,
  auth: RequestAuth,
  job: { plan: GenerationPlan; requested: string },
  run: () => Promise<GenerationOutcome>,
): Promise<GenerationOutcome> {
  const { account } = auth;
  const quota = ctx.app.quota;
  // Unmetered, the generation is run as it is: no further frame waits on it while it is held.
  if (!account || !quota) return run();
  return meteredRun(ctx, account, quota, job, run);
}

async function meteredRun(
  ctx: RequestContext,
  account: KeyRecord,
  quota: QuotaStore,
  job: { plan: GenerationPlan; requested: string },
  run: () => Promise<GenerationOutcome>,
): Promise<GenerationOutcome> {
  const { plan } = job;
  checkModelAllowed(account, job.requested, plan.model);
  const reservation = await quota.reserve(account, plan.n);
  const warn = (msg: string) => (err: unknown) =>
    ctx.app.logger({
      level: "warn",
      msg,
      key_id: account.id,
      error: errorText(err),
    });
  const settle = async (made: number) => {
    const requested = plan.n;
    // A release that fails stays reserved until this instance stops; recovery then gives it back.
    await reservation.release(requested - made).catch(warn("could not settle a quota reservation"));
    await quota.record(account.id, plan.model.id, { requested, made, failures: requested - made })
      .catch(warn("could not record usage"));
  };
  let outcome: GenerationOutcome;
  try {
    outcome = await run();
  } catch (err) {
    await settle(0);
    throw err;
  }
  await settle(outcome.images.length);
  return outcome;
}

/** A 403 unless a managed key may use the model (as named, or as the model it resolved to). */
export function checkModelAllowed(account: KeyRecord, requested: string, model: ModelSpec): void {
  const allowed = account.models?.map((m) => m.toLowerCase());
  if (
    allowed && !allowed.includes(requested.toLowerCase()) &&
    !allowed.includes(model.id.toLowerCase())
  ) {
    throw new ApiError(403, `This access key may not use ${requested}.`, {
      param: "model",
      code: "model_not_allowed",
    });
  }
}

/** One request: its own state, and the app. */
export interface RequestContext extends Exchange {
  /** The server. */
  readonly app: App;
  /** Aborts when the client goes away or the server's shutdown grace runs out. */
  readonly signal: AbortSignal;
  /** The request's share of the body budget. */
  readonly bodyShare: BodyShare;
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
  return finalError({ requestId: ctx.requestId, shutdownSignal, logger }, err);
}

/**
 * Resolves the requested model (alias, registry id, or a model SiliconFlow lists for this key,
 * served with the generic schema) and notes it for the log line.
 */
export async function requestedModel(
  ctx: RequestContext,
  auth: UpstreamAuth,
  id: unknown,
  options: { withImages: boolean; param?: string },
): Promise<ModelSpec> {
  let model: ModelSpec;
  try {
    model = resolveModel(ctx.app.config.modelAliases, id, options);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404 || typeof id !== "string") throw err;
    const wanted = id.trim().toLowerCase();
    const listed = (await ctx.app.upstream.listedModels({ auth, origin: ctx.url.origin }))
      .find((m) => m.id.toLowerCase() === wanted);
    if (!listed) throw err;
    model = genericModel(listed);
  }
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
    origin: () => ctx.url.origin,
    onTraceId: (id) => (ctx.log.traceId = id),
  });
}

/**
 * What the answer's headers say about the plan: `X-Ignored-Params` when it dropped fields the model
 * does not take, `X-Parameter-Checks: none` for a model the registry does not know.
 */
export function planHeaders(plan: GenerationPlan): Record<string, string> {
  const headers: Record<string, string> = {};
  if (plan.ignored.length) headers["x-ignored-params"] = plan.ignored.join(", ");
  if (plan.model.unchecked) headers["x-parameter-checks"] = "none";
  return headers;
}

/** The lines said under the images about the plan (dropped fields, an unchecked model). */
export function planNotes(plan: GenerationPlan): string[] {
  const notes: string[] = [];
  if (plan.ignored.length) {
    const them = plan.ignored.length > 1 ? "them" : "it";
    notes.push(`Ignored ${plan.ignored.join(", ")}: ${plan.model.id} does not take ${them}.`);
  }
  if (plan.model.unchecked) {
    notes.push(
      `${plan.model.id} is not in this server's model list: it ran without parameter checks.`,
    );
  }
  return notes;
}

/** What differs between the streamed answers of the endpoints. */
export interface StreamShape<E> {
  /** Turns events into frames. */
  encoder: EventEncoder<E>;
  /** The keep-alive event, given the seconds so far. */
  keepAlive: (elapsedS: number) => E;
  /** The last events for a failure the client is still there to hear. */
  failureEvents: (error: ApiError) => E[];
  /** Extra response headers. */
  headers?: Record<string, string>;
}

/**
 * A streamed answer of this request: keep-alives every `KEEPALIVE_MS`, the header hold of
 * `STREAM_HOLD_MS`, failures turned into the endpoint's last events, and the final status handed
 * to the log line.
 */
export async function streamAnswer<E>(
  ctx: RequestContext,
  shape: StreamShape<E>,
  produce: (sink: EventSink<E>, signal: AbortSignal) => Promise<void>,
): Promise<Response> {
  const { app } = ctx;
  const { response, done } = await eventStreamResponse<E>(produce, {
    encoder: shape.encoder,
    keepAliveMs: app.config.keepAliveMs,
    keepAlive: shape.keepAlive,
    owner: ctx,
    shutdownSignal: app.shutdownSignal,
    onError: (err) => {
      const error = failure(ctx, err);
      ctx.log.outcome = error.code ?? undefined;
      const events = error.status === CLIENT_CLOSED ? [] : shape.failureEvents(error);
      return { events, status: error.status };
    },
    now: app.now,
    open: app.streams,
    headers: shape.headers,
    holdMs: app.config.streamHoldMs,
  });
  ctx.streamDone = done;
  return response;
}
