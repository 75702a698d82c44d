/**
 * `GET /v1/models` and `GET /v1/models/{id}`: the registry and the aliases as OpenAI models.
 * @module
 */
import { jsonResponse, type RequestContext } from "./context.ts";
import { ApiError } from "./errors.ts";
import { findModel, MODELS } from "./models.ts";

/** An OpenAI model object. */
export interface ModelObject {
  /** Model id. */
  id: string;
  /** Always `model`. */
  object: "model";
  /** A fixed timestamp (the registry has no real dates). */
  created: number;
  /** Owner. */
  owned_by: string;
}

// 2025-08-04, when Qwen-Image came out; SiliconFlow itself reports 0.
const CREATED = 1754265600;

/** Every model and alias this server answers to. */
export function listModels(ctx: RequestContext): ModelObject[] {
  const models: ModelObject[] = MODELS.map((m) => ({
    id: m.id,
    object: "model",
    created: CREATED,
    owned_by: m.ownedBy,
  }));
  for (const alias of Object.keys(ctx.config.modelAliases)) {
    if (!findModel(alias)) {
      models.push({ id: alias, object: "model", created: CREATED, owned_by: "alias" });
    }
  }
  return models;
}

/** `GET /v1/models`. */
export function modelsList(ctx: RequestContext): Promise<Response> {
  return Promise.resolve(jsonResponse({ object: "list", data: listModels(ctx) }));
}

/** `GET /v1/models/{id}`; 404 in OpenAI shape when unknown. */
export function modelsRetrieve(ctx: RequestContext): Promise<Response> {
  const id = ctx.params.id ?? "";
  const found = listModels(ctx).find((m) => m.id.toLowerCase() === id.toLowerCase());
  if (!found) {
    throw new ApiError(404, `The model '${id.slice(0, 200)}' does not exist`, {
      param: "model",
      code: "model_not_found",
    });
  }
  return Promise.resolve(jsonResponse(found));
}
