/**
 * Turns what a client asked for (prompt, images, loose body fields) into the SiliconFlow calls
 * to make, validated against the model's own schema. Chat and the Images API share it.
 * @module
 */
import { ApiError, invalidParam, toApiError } from "../server/errors.ts";
import { zodError } from "./zod_error.ts";
import { present } from "../values.ts";
import type { UpstreamResult } from "../siliconflow/client.ts";
import { batchLimit, MAX_N, type ModelSpec, UPSTREAM_PARAM_NAMES } from "./registry.ts";

export { MAX_N } from "./registry.ts";

/**
 * The longest prompt, in characters, on every route (chat, Images, Videos, Responses): far past
 * what SiliconFlow's image and video models read, and what a job's record on Deno KV can hold.
 */
export const MAX_PROMPT_CHARS = 10_000;
import { modelSchema } from "./schemas.ts";
import { resolveImageSize } from "./sizes.ts";

/**
 * Names that mean the same thing on different models: the guidance strength is `guidance_scale`
 * on Kolors and `cfg` on the Qwen family. A client (or the original project's own README) that
 * sends one to a model that takes the other is understood, not refused.
 */
export const PARAM_SYNONYMS: Readonly<Record<string, string>> = {
  guidance_scale: "cfg",
  cfg: "guidance_scale",
};

/**
 * OpenAI's image fields that no SiliconFlow model serves (an edit's `mask` among them): named as
 * ignored unless they ask for nothing (`"auto"`, `0`, `false`), and never refused, even when
 * strict (clients of OpenAI's models send them as a matter of course).
 */
const OPENAI_ONLY_PARAMS = [
  "background",
  "style",
  "moderation",
  "output_compression",
  "input_fidelity",
  "partial_images",
  "mask",
];

/** What a client asked for, before validation. */
export interface GenerationInput {
  /** The model entry. */
  model: ModelSpec;
  /** The prompt text. */
  prompt: string;
  /** Input images: http(s) URLs or data URIs, in order. */
  images: string[];
  /** Loose request fields: SiliconFlow parameter names plus `size`, `aspect_ratio` and `n`. */
  fields: Record<string, unknown>;
  /** The request field that carries the images, for error messages. */
  imagesParam: string;
  /** The request field that carries the prompt, for error messages. */
  promptParam: string;
  /** `STRICT_PARAMS`: a field the model does not take is a 400 instead of being dropped. */
  strict?: boolean;
}

/** The validated upstream calls for one request. */
export interface GenerationPlan {
  /** The model entry. */
  model: ModelSpec;
  /** One SiliconFlow request body per upstream call, in result order. */
  calls: Record<string, unknown>[];
  /** How many images the client asked for in all. */
  n: number;
  /** The `image_size` sent, if any. */
  imageSize?: string;
  /** Known fields the model does not take, dropped (the answer says so). */
  ignored: string[];
}

function parseN(value: unknown, param = "n"): number {
  if (!present(value)) return 1;
  const n = typeof value === "string" && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_N) {
    throw invalidParam(param, `${param} must be an integer from 1 to ${MAX_N}`);
  }
  return n;
}

/**
 * How many images: `n`, or `batch_size` sent to a model that makes one image per call (it means
 * the same thing there, so it is honoured as `n`).
 */
function imageCount(model: ModelSpec, fields: Record<string, unknown>): number {
  if (!present(fields.n) && present(fields.batch_size) && !("batch_size" in model.params)) {
    return parseN(fields.batch_size, "batch_size");
  }
  return parseN(fields.n);
}

/** A 400 naming `param` unless the model takes `count` input images. */
export function checkImageCount(model: ModelSpec, count: number, param: string): void {
  const { min, max } = model.inputImages;
  if (count >= min && count <= max) return;
  const wanted = max === 0
    ? "takes no input images; use an edit model to change an image"
    : min === max
    ? `takes exactly ${min} input image${min === 1 ? "" : "s"}`
    : `takes ${min} to ${max} input images`;
  throw invalidParam(
    param,
    `${model.id} ${wanted}, but the request has ${count}.`,
    min > count ? "image_required" : "too_many_images",
  );
}

/**
 * The SiliconFlow parameters among the request fields, under the model's own names, and the name
 * each was sent as where a synonym was used. A known field the model does not take is dropped and
 * listed as ignored (SiliconFlow itself ignores it), or with `strict` it is a 400. OpenAI's own
 * (see {@link OPENAI_ONLY_PARAMS}) are listed too.
 */
function pickParams(model: ModelSpec, fields: Record<string, unknown>, strict: boolean) {
  const params: Record<string, unknown> = {};
  const sentAs: Record<string, string> = {};
  const ignored: string[] = [];
  for (const name of UPSTREAM_PARAM_NAMES) {
    const value = fields[name];
    if (!present(value) || name === "image_size") continue;
    const synonym = PARAM_SYNONYMS[name];
    if (!(name in model.params) && synonym && synonym in model.params) {
      // The model's own name wins when both are sent.
      if (!present(fields[synonym])) {
        params[synonym] = value;
        sentAs[synonym] = name;
      }
      continue;
    }
    if (!(name in model.params) && !strict) {
      // batch_size on a one-image model is honoured as n (see imageCount).
      if (name !== "batch_size") ignored.push(name);
      continue;
    }
    if (!(name in model.params)) {
      throw invalidParam(
        name,
        `${model.id} does not accept ${name}. It accepts: ${
          Object.keys(model.params).join(", ") || "no extra parameters"
        }.`,
        "unsupported_parameter",
      );
    }
    params[name] = value;
  }
  for (const name of OPENAI_ONLY_PARAMS) {
    const value = fields[name];
    if (present(value) && value !== "auto" && value !== 0 && value !== false) ignored.push(name);
  }
  return { params, sentAs, ignored };
}

/**
 * The inference steps GPT Image 2.5's top `quality` values stand for, on a model that takes
 * `num_inference_steps` (SiliconFlow's default is 20). The other OpenAI values (`low`, `medium`,
 * `high`, `auto`, `standard`, `hd`) leave the model's default alone.
 */
export const QUALITY_STEPS: Readonly<Record<string, number>> = { xhigh: 40, max: 50 };

/** `quality: xhigh | max` as more steps where the model has them and none were asked; else named. */
function applyQuality(
  model: ModelSpec,
  quality: unknown,
  params: Record<string, unknown>,
  ignored: string[],
): void {
  const key = typeof quality === "string" ? quality.toLowerCase() : "";
  if (!Object.hasOwn(QUALITY_STEPS, key)) return;
  if (!("num_inference_steps" in model.params)) ignored.push("quality");
  else if (!present(params.num_inference_steps)) params.num_inference_steps = QUALITY_STEPS[key];
}

/** Validates a request against its model and plans the upstream calls. */
export function planGeneration(input: GenerationInput): GenerationPlan {
  const { model, fields } = input;
  const prompt = input.prompt.trim();
  if (!prompt) {
    const what = model.video ? "video" : "image";
    throw invalidParam(input.promptParam, `A prompt is required: describe the ${what} to make.`);
  }
  if (prompt.length > MAX_PROMPT_CHARS) {
    throw invalidParam(
      input.promptParam,
      `The prompt is ${prompt.length} characters long; it may be at most ${MAX_PROMPT_CHARS}.`,
      "prompt_too_long",
    );
  }
  checkImageCount(model, input.images.length, input.imagesParam);

  // A model whose parameters rest on no reference drops what it may not take, even when strict.
  const strict = (input.strict ?? false) && model.verified;
  const { params, sentAs, ignored } = pickParams(model, fields, strict);
  applyQuality(model, fields.quality, params, ignored);
  const imageSize = resolveImageSize(model, {
    imageSize: fields.image_size,
    aspectRatio: fields.aspect_ratio,
    size: fields.size,
  });
  if (imageSize !== undefined) params.image_size = imageSize;

  const parsed = modelSchema(model).safeParse(params);
  if (!parsed.success) {
    throw zodError(parsed.error, {
      rename: sentAs,
      describe: (param, message) => `Invalid ${param} for ${model.id}: ${message}`,
    });
  }
  const valid = parsed.data as Record<string, unknown>;

  const n = imageCount(model, fields);
  const limit = batchLimit(model);
  const base: Record<string, unknown> = { model: model.id, prompt, ...valid };
  input.images.forEach((image, i) => (base[i === 0 ? "image" : `image${i + 1}`] = image));

  let calls: Record<string, unknown>[];
  if (limit > 1) {
    if (valid.batch_size === undefined && n > 1) base.batch_size = n;
    calls = [base];
  } else {
    const seed = valid.seed as number | undefined;
    calls = Array.from({ length: n }, (_, i) => (seed === undefined ? { ...base } : {
      ...base,
      seed: (seed + i) % 10_000_000_000,
    }));
  }
  const total = limit > 1 ? (base.batch_size as number | undefined) ?? 1 : n;
  return { model, calls, n: total, imageSize: valid.image_size as string | undefined, ignored };
}

/** One generated image. */
export interface GeneratedImage {
  /** Its URL (or data URI). */
  url: string;
  /** The seed that produced it, where known exactly. */
  seed?: number;
}

/** What a plan produced: images in order, and the calls that failed. */
export interface GenerationOutcome {
  /** Images in request order. */
  images: GeneratedImage[];
  /** Failed calls; empty when all succeeded. */
  failures: ApiError[];
  /** Upstream trace ids seen. */
  traceIds: string[];
}

/** Something that can make one upstream call (the SiliconFlow client, in practice). */
export type GenerateCall = (body: Record<string, unknown>) => Promise<UpstreamResult>;

/**
 * Runs the plan's calls concurrently and merges their images in order. When every call fails the
 * first error is thrown; when only some fail, the rest is returned with the failures listed, so
 * that callers can say so instead of returning fewer images in silence.
 */
export async function runGeneration(
  plan: GenerationPlan,
  call: GenerateCall,
): Promise<GenerationOutcome> {
  const settled = await Promise.allSettled(plan.calls.map((body) => call(body)));
  return mergeOutcome(plan, settled);
}

/** The images of the settled calls, in order; the first failure when every call failed. */
function mergeOutcome(
  plan: GenerationPlan,
  settled: PromiseSettledResult<UpstreamResult>[],
): GenerationOutcome {
  const images: GeneratedImage[] = [];
  const failures: ApiError[] = [];
  const traceIds: string[] = [];
  for (const [i, result] of settled.entries()) {
    if (result.status === "rejected") {
      failures.push(
        result.reason instanceof ApiError ? result.reason : toApiError(result.reason),
      );
      continue;
    }
    const { images: urls, seed, traceId } = result.value;
    if (traceId) traceIds.push(traceId);
    const known = seed ?? (plan.calls[i].seed as number | undefined);
    // A batch reports one seed for several images, so no single image can claim it.
    for (const url of urls) images.push({ url, seed: urls.length === 1 ? known : undefined });
  }
  if (images.length === 0) throw failures[0];
  return { images, failures, traceIds };
}

/** "2 of 4 images failed: …" when some calls failed, so no caller returns fewer in silence. */
export function failureSummary(outcome: GenerationOutcome): string | undefined {
  if (!outcome.failures.length) return undefined;
  const requested = outcome.images.length + outcome.failures.length;
  return `${outcome.failures.length} of ${requested} images failed: ${outcome.failures[0].message}`;
}
