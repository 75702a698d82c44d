/**
 * Generations on a managed key's quota: the models it may use, the images reserved before the
 * upstream call, what was not made given back, and the usage recorded.
 * @module
 */
import type { GenerationOutcome, GenerationPlan } from "../generation/plan.ts";
import type { ModelSpec } from "../generation/registry.ts";
import type { KeyRecord } from "../quota/store.ts";
import { ApiError } from "../server/errors.ts";
import { errorText } from "../server/logger.ts";
import type { RequestAuth } from "./auth.ts";
import type { RequestContext } from "./context.ts";

/**
 * Reserves a generation's images on a KV-managed key's quota: the model must be one the key may
 * use (403), and the images must fit its limits (429). Answers how to settle it once it ran: what
 * was not made is given back, and the usage recorded. Other callers have nothing to settle.
 */
export async function reserveQuota(
  ctx: RequestContext,
  auth: RequestAuth,
  job: { plan: GenerationPlan; requested: string },
): Promise<(made: number) => Promise<void>> {
  const { account } = auth;
  const quota = ctx.app.quota;
  if (!account || !quota) return () => Promise.resolve();
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
  return async (made: number) => {
    const requested = plan.n;
    // A release that fails stays reserved until this instance stops; recovery then gives it back.
    await reservation.release(requested - made).catch(warn("could not settle a quota reservation"));
    await quota.record(account.id, plan.model.id, { requested, made, failures: requested - made })
      .catch(warn("could not record usage"));
  };
}

/** Runs a generation on the caller's quota (see {@link reserveQuota}). */
export async function metered(
  ctx: RequestContext,
  auth: RequestAuth,
  job: { plan: GenerationPlan; requested: string },
  run: () => Promise<GenerationOutcome>,
): Promise<GenerationOutcome> {
  const settle = await reserveQuota(ctx, auth, job);
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
