/**
 * The registry's parameters as zod schemas (cached per model), and the rules SiliconFlow applies
 * to a request body, which the demo stand-in applies in its place.
 * @module
 */
import { z } from "zod";
import { findModel, type ModelSpec, type ParamSpec, UPSTREAM_PARAM_NAMES } from "./registry.ts";

// Clients such as Cherry Studio's custom parameters may send numbers as strings.
function numeric(inner: z.ZodNumber): z.ZodType<number> {
  return z.preprocess(
    (v) => (typeof v === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v),
    inner,
  ) as unknown as z.ZodType<number>;
}

// One side of a size, 64 to 4096, as a pattern, so that the JSON Schema says what zod checks.
const SIDE = "(?:6[4-9]|[7-9]\\d|[1-9]\\d{2}|[1-3]\\d{3}|40[0-8]\\d|409[0-6])";
const SIZE_IN_RANGE = new RegExp(`^${SIDE}x${SIDE}$`);

/** Builds the zod schema of one parameter. */
export function paramSchema(spec: ParamSpec): z.ZodType {
  switch (spec.type) {
    case "integer":
      return numeric(z.number().int().min(spec.min).max(spec.max));
    case "number":
      return numeric(z.number().min(spec.min).max(spec.max));
    case "string":
      return z.string().max(spec.maxLength);
    case "boolean":
      return z.preprocess(
        (v) => (v === "true" ? true : v === "false" ? false : v),
        z.boolean(),
      );
    case "enum":
      return z.enum(spec.values as [string, ...string[]]);
    case "size":
      return z.string().regex(SIZE_IN_RANGE, {
        message: "must be WIDTHxHEIGHT, each side 64 to 4096, e.g. 1024x1024",
      });
  }
}

const schemaCache = new WeakMap<ModelSpec, z.ZodObject>();

/** The zod schema of a model's parameters: every field optional, only its own fields. */
export function modelSchema(model: ModelSpec): z.ZodObject {
  let schema = schemaCache.get(model);
  if (!schema) {
    schema = z.object(
      Object.fromEntries(
        Object.entries(model.params).map(([name, spec]) => [name, paramSchema(spec).optional()]),
      ),
    );
    schemaCache.set(model, schema);
  }
  return schema;
}

const IMAGE_FIELDS = ["image", "image2", "image3"];

/**
 * What SiliconFlow says to a request body, by this registry: a refusal (its code and message), or
 * undefined for a body it takes. The demo stand-in applies it.
 */
export function upstreamRules(
  body: Record<string, unknown>,
): { code: number; message: string } | undefined {
  const model = typeof body.model === "string" ? findModel(body.model) : undefined;
  if (!model || model.id !== body.model) {
    return { code: 20012, message: "Model does not exist. Please check it carefully." };
  }
  if (typeof body.prompt !== "string" || !body.prompt.trim()) {
    return { code: 20015, message: "prompt is required" };
  }
  const allowed = new Set(["model", "prompt", ...Object.keys(model.params)]);
  IMAGE_FIELDS.slice(0, model.inputImages.max).forEach((k) => allowed.add(k));
  for (const key of Object.keys(body)) {
    if (!allowed.has(key) && (UPSTREAM_PARAM_NAMES.includes(key) || key.startsWith("image"))) {
      return { code: 20015, message: `Parameter ${key} is not supported by ${model.id}` };
    }
  }
  if (IMAGE_FIELDS.filter((k) => body[k] !== undefined).length < model.inputImages.min) {
    return { code: 20015, message: `${model.id} requires an input image` };
  }
  const params = Object.fromEntries(Object.keys(model.params).map((k) => [k, body[k]]));
  const parsed = modelSchema(model).safeParse(params);
  if (!parsed.success) {
    return { code: 20015, message: `Invalid parameter: ${parsed.error.issues[0].message}` };
  }
  return undefined;
}

/**
 * What SiliconFlow says to a video submit, by this registry: a video model, a prompt, one of its
 * sizes (`image_size` is required there), and an image for a model that takes one.
 */
export function videoRules(
  body: Record<string, unknown>,
): { code: number; message: string } | undefined {
  const model = typeof body.model === "string" ? findModel(body.model) : undefined;
  if (!model?.video || model.id !== body.model) {
    return { code: 20012, message: "Model does not exist. Please check it carefully." };
  }
  if (typeof body.prompt !== "string" || !body.prompt.trim()) {
    return { code: 20015, message: "prompt is required" };
  }
  if (body.image_size === undefined) return { code: 20015, message: "image_size is required" };
  if (model.inputImages.min > 0 && typeof body.image !== "string") {
    return { code: 20015, message: `${model.id} requires an image` };
  }
  const params = Object.fromEntries(Object.keys(model.params).map((k) => [k, body[k]]));
  const parsed = modelSchema(model).safeParse(params);
  if (!parsed.success) {
    return { code: 20015, message: `Invalid parameter: ${parsed.error.issues[0].message}` };
  }
  return undefined;
}
