/**
 * A model's parameters as JSON Schema, made from the zod schema the server validates with: what
 * `GET /v1/models/{id}` adds to the model object, and what the playground builds its form from.
 * @module
 */
import { z } from "zod";
import type { ModelSpec } from "../generation/registry.ts";
import { modelSchema } from "../generation/schemas.ts";

/**
 * What a client needs to build a form for a model (clients ignore fields they do not know): its
 * parameters as JSON Schema, made from the same zod schema the server validates with (numbers may
 * also be sent as numeric strings), its input-image count and its recommended sizes.
 */
export function describeModel(spec: ModelSpec): {
  parameters: Record<string, unknown>;
  input_images: { min: number; max: number };
  sizes: readonly string[];
  video?: { seconds: number };
} {
  const parameters = z.toJSONSchema(modelSchema(spec), { io: "input", unrepresentable: "any" });
  const described = { parameters, input_images: { ...spec.inputImages }, sizes: spec.sizes };
  // A video model says so (and its length): it is served by /v1/videos.
  return spec.video ? { ...described, video: { ...spec.video } } : described;
}
