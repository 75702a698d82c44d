/**
 * `GET /v1/models` and `GET /v1/models/{id}`: the registry and the aliases as OpenAI models.
 * @module
 */
import { findModel, modelNotFound, MODELS } from "../generation/registry.ts";
import { jsonResponse } from "../server/response.ts";
import type { RequestContext } from "./context.ts";
import type { ModelObject } from "./types.ts";

export type { ModelObject } from "./types.ts";

// 2025-08-04, when Qwen-Image came out; SiliconFlow itself reports 0.
const CREATED = 1754265600;

/** Every model and alias this server answers to. */
export function listModels(ctx: RequestContext): ModelObject[] {
  const model = (id: string, owner: string) =>
    ({ id, object: "model", created: CREATED, owned_by: owner }) satisfies ModelObject;
  const models = MODELS.map((m) => model(m.id, m.ownedBy));
  for (const alias of Object.keys(ctx.app.config.modelAliases)) {
    if (!findModel(alias)) models.push(model(alias, "alias"));
  }
  return models;
}

/** `GET /v1/models`. */
export function modelsList(ctx: RequestContext): Promise<Response> {
  return Promise.resolve(jsonResponse({ object: "list", data: listModels(ctx) }));
}

/** `GET /v1/models/{id}`; 404 in OpenAI shape when unknown. */
export function modelsRetrieve(
  ctx: RequestContext,
  params: Readonly<Record<string, string | undefined>>,
): Promise<Response> {
  const id = params.id ?? "";
  const found = listModels(ctx).find((m) => m.id.toLowerCase() === id.toLowerCase());
  if (!found) throw modelNotFound(id);
  return Promise.resolve(jsonResponse(found));
}
