/**
 * From a request to its generation: the model it names, the upstream caller with its key and
 * trace id, and what the answer says about the plan.
 * @module
 */
import type { GenerationPlan } from "../generation/plan.ts";
import { genericModel, type ModelSpec, resolveModel } from "../generation/registry.ts";
import { ApiError } from "../server/errors.ts";
import type { UpstreamResult } from "../siliconflow/client.ts";
import type { UpstreamAuth } from "../siliconflow/keys.ts";
import type { RequestContext } from "./context.ts";

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
