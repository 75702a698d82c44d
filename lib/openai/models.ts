/**
 * `GET /v1/models` and `GET /v1/models/{id}`: the registry and the aliases as OpenAI models. The
 * list needs no zod, so that the first answer after start-up does not wait for it.
 * @module
 */
import { findModel, genericModel, modelNotFound, MODELS } from "../generation/registry.ts";
import { jsonResponse } from "../server/response.ts";
import type { UpstreamAuth } from "../siliconflow/keys.ts";
import type { ListedModel } from "../siliconflow/client.ts";
import { authorizeRequest } from "./auth.ts";
import type { RequestContext } from "./context.ts";
import type { ModelObject } from "./types.ts";

export type { ModelObject } from "./types.ts";

// 2025-08-04, when Qwen-Image came out; SiliconFlow itself reports 0.
const CREATED = 1754265600;

/**
 * Every model and alias this server answers to: the registry, the aliases, and the image models
 * SiliconFlow lists for the caller's key (or the server's, in server-key mode), cached for
 * minutes. Without a usable key, or when the list cannot be had, the built-in list stands alone.
 */
export async function listModels(ctx: RequestContext): Promise<ModelObject[]> {
  const model = (id: string, owner: string) =>
    ({ id, object: "model", created: CREATED, owned_by: owner }) satisfies ModelObject;
  const models = MODELS.map((m) => model(m.id, m.ownedBy));
  for (const alias of Object.keys(ctx.app.config.modelAliases)) {
    if (!findModel(alias)) models.push(model(alias, "alias"));
  }
  for (const listed of await callerListing(ctx)) {
    if (!findModel(listed.id)) models.push(model(listed.id, genericModel(listed).ownedBy));
  }
  return models;
}

/**
 * What SiliconFlow lists for the caller's key (or the server's), cached for minutes; none when the
 * caller has no usable key or the list cannot be had.
 */
export async function callerListing(ctx: RequestContext): Promise<ListedModel[]> {
  let auth: UpstreamAuth;
  try {
    auth = await authorizeRequest(ctx);
  } catch {
    return []; // no key to ask SiliconFlow with
  }
  return await ctx.app.upstream.listedModels({ auth, origin: ctx.url.origin });
}

/** `GET /v1/models`. */
export async function modelsList(ctx: RequestContext): Promise<Response> {
  return jsonResponse({ object: "list", data: await listModels(ctx) });
}

/** `GET /v1/models/{id}`; 404 in OpenAI shape when unknown. */
export async function modelsRetrieve(
  ctx: RequestContext,
  params: Readonly<Record<string, string | undefined>>,
): Promise<Response> {
  const id = params.id ?? "";
  const found = (await listModels(ctx)).find((m) => m.id.toLowerCase() === id.toLowerCase());
  if (!found) throw modelNotFound(id);
  const alias = ctx.app.config.modelAliases[found.id.toLowerCase()];
  const spec = findModel(alias ? alias.generate : found.id) ??
    genericModel({ id: found.id, subType: "text-to-image" });
  // The JSON Schema comes from zod, which is loaded after start-up (see routes.ts).
  const { describeModel } = await import("./model_schema.ts");
  return jsonResponse({ ...found, ...describeModel(spec) });
}
