/**
 * The model registry: one entry per SiliconFlow image model. Validation, `/v1/models`, size
 * mapping and the demo stand-in all read this one table, so adding a model is adding an entry.
 * @module
 */
import { ApiError } from "../server/errors.ts";

/** The most images one request may ask for (`n`). */
export const MAX_N = 4;

/** How one upstream parameter is validated. */
export type ParamSpec =
  | { readonly type: "integer"; readonly min: number; readonly max: number }
  | { readonly type: "number"; readonly min: number; readonly max: number }
  | { readonly type: "string"; readonly maxLength: number }
  | { readonly type: "boolean" }
  | { readonly type: "enum"; readonly values: readonly string[] }
  | { readonly type: "size" };

/** One image model as SiliconFlow serves it. */
export interface ModelSpec {
  /** SiliconFlow model id, e.g. `Qwen/Qwen-Image`. */
  readonly id: string;
  /** Shown as `owned_by` in `/v1/models`. */
  readonly ownedBy: string;
  /** How many input images it takes (sent as `image`, `image2`, `image3`). */
  readonly inputImages: { readonly min: number; readonly max: number };
  /** The upstream parameters it accepts, besides `model`, `prompt` and the images. */
  readonly params: Readonly<Record<string, ParamSpec>>;
  /** Recommended `image_size` values; the first is the default. Empty if it takes no size. */
  readonly sizes: readonly string[];
  /** False where the entry rests on third-party or incomplete documentation. */
  readonly verified: boolean;
  /** True for a model SiliconFlow lists that this registry does not know (see {@link genericModel}). */
  readonly unchecked?: boolean;
  /**
   * Set for a video model (served by `/v1/videos` and chat as jobs, through SiliconFlow's
   * `video/submit`): the length of what it makes, whatever a request asks for.
   */
  readonly video?: { readonly seconds: number };
}

const SEED: ParamSpec = { type: "integer", min: 0, max: 9_999_999_999 };
// SiliconFlow's reference: 1–100, default 20.
const STEPS: ParamSpec = { type: "integer", min: 1, max: 100 };
const NEGATIVE: ParamSpec = { type: "string", maxLength: 10_000 };
const SIZE: ParamSpec = { type: "size" };
const QWEN_CFG: ParamSpec = { type: "number", min: 0.1, max: 20 };

const QWEN_EDIT_PARAMS: Readonly<Record<string, ParamSpec>> = {
  seed: SEED,
  num_inference_steps: STEPS,
  cfg: QWEN_CFG,
  negative_prompt: NEGATIVE,
};

const QWEN_SIZES = [
  "1328x1328",
  "1664x928",
  "928x1664",
  "1472x1140",
  "1140x1472",
  "1584x1056",
  "1056x1584",
] as const;

// FLUX.2-pro's documented parameters; its size enum's first (512x512) is SiliconFlow's default.
const FLUX2_SIZES = ["512x512", "768x1024", "1024x768", "576x1024", "1024x576"] as const;
const FLUX2 = {
  ownedBy: "black-forest-labs",
  inputImages: { min: 0, max: 0 },
  params: {
    image_size: { type: "enum", values: FLUX2_SIZES },
    seed: SEED,
    output_format: { type: "enum", values: ["png", "jpeg"] },
  },
  sizes: FLUX2_SIZES,
} as const satisfies Omit<ModelSpec, "id" | "verified">;

const Z_IMAGE_SIZES = [
  "1024x1024",
  "1200x896",
  "1264x848",
  "1376x768",
  "896x1200",
  "768x1376",
] as const;

// SiliconFlow's video sizes: landscape, portrait, square. `image_size` is required there.
const WAN_SIZES = ["1280x720", "720x1280", "960x960"] as const;
const WAN = {
  ownedBy: "Wan-AI",
  params: {
    image_size: { type: "enum", values: WAN_SIZES },
    seed: SEED,
    negative_prompt: NEGATIVE,
  },
  sizes: WAN_SIZES,
  verified: true,
  // Wan 2.2 makes 81 frames at 16 fps; SiliconFlow's reference does not state the length.
  video: { seconds: 5 },
} as const satisfies Omit<ModelSpec, "id" | "inputImages">;

/** Every model this server knows, in the order `/v1/models` lists them. */
export const MODELS: readonly ModelSpec[] = [
  {
    id: "Kwai-Kolors/Kolors",
    ownedBy: "Kwai-Kolors",
    inputImages: { min: 0, max: 1 },
    params: {
      image_size: SIZE,
      batch_size: { type: "integer", min: 1, max: 4 },
      seed: SEED,
      num_inference_steps: STEPS,
      guidance_scale: { type: "number", min: 0, max: 20 },
      negative_prompt: NEGATIVE,
    },
    sizes: ["1024x1024", "960x1280", "768x1024", "720x1440", "720x1280"],
    verified: true,
  },
  {
    id: "Qwen/Qwen-Image",
    ownedBy: "Qwen",
    inputImages: { min: 0, max: 0 },
    params: {
      image_size: SIZE,
      seed: SEED,
      num_inference_steps: STEPS,
      cfg: QWEN_CFG,
      negative_prompt: NEGATIVE,
    },
    sizes: QWEN_SIZES,
    verified: true,
  },
  {
    id: "Qwen/Qwen-Image-Edit",
    ownedBy: "Qwen",
    inputImages: { min: 1, max: 1 },
    params: QWEN_EDIT_PARAMS,
    sizes: [],
    verified: true,
  },
  {
    id: "Qwen/Qwen-Image-Edit-2509",
    ownedBy: "Qwen",
    inputImages: { min: 1, max: 3 },
    params: QWEN_EDIT_PARAMS,
    sizes: [],
    verified: true,
  },
  // International docs: image_size enum, seed, output_format.
  { id: "black-forest-labs/FLUX.2-pro", ...FLUX2, verified: true },
  {
    // International docs example: image_size, seed, prompt_enhancement. Sizes are not listed there.
    id: "black-forest-labs/FLUX.1-schnell",
    ownedBy: "black-forest-labs",
    inputImages: { min: 0, max: 0 },
    params: { image_size: SIZE, seed: SEED, prompt_enhancement: { type: "boolean" } },
    sizes: ["1024x1024", "1024x768", "768x1024", "1024x576", "576x1024"],
    verified: false,
  },
  // siliconflow.com, reported (2026-09) as its current bulk FLUX model; not in SiliconFlow's
  // reference, so it is given FLUX.2-pro's documented parameters and nothing more.
  { id: "black-forest-labs/FLUX.2-flex", ...FLUX2, verified: false },
  {
    // siliconflow.cn lists it (6B, undistilled: full CFG and a negative prompt); its parameters
    // are not in SiliconFlow's reference. Sizes from Cherry Studio's catalogue.
    id: "Tongyi-MAI/Z-Image",
    ownedBy: "Tongyi-MAI",
    inputImages: { min: 0, max: 0 },
    params: {
      image_size: SIZE,
      seed: SEED,
      num_inference_steps: STEPS,
      guidance_scale: { type: "number", min: 0, max: 20 },
      negative_prompt: NEGATIVE,
    },
    sizes: Z_IMAGE_SIZES,
    verified: false,
  },
  {
    // siliconflow.cn lists it (8-step distilled); parameters from Cherry Studio's catalogue.
    id: "Tongyi-MAI/Z-Image-Turbo",
    ownedBy: "Tongyi-MAI",
    inputImages: { min: 0, max: 0 },
    params: { image_size: SIZE, seed: SEED },
    sizes: Z_IMAGE_SIZES,
    verified: false,
  },
  {
    // siliconflow.cn lists it (8B, 8-step distilled); its parameters are documented nowhere.
    id: "baidu/ERNIE-Image-Turbo",
    ownedBy: "baidu",
    inputImages: { min: 0, max: 0 },
    params: { image_size: SIZE, seed: SEED },
    sizes: ["1024x1024", "1264x848", "848x1264", "1376x768", "768x1376"],
    verified: false,
  },
  { id: "Wan-AI/Wan2.2-T2V-A14B", inputImages: { min: 0, max: 0 }, ...WAN },
  // The image is the video's first frame.
  { id: "Wan-AI/Wan2.2-I2V-A14B", inputImages: { min: 1, max: 1 }, ...WAN },
];

const BY_ID = new Map(MODELS.map((m) => [m.id.toLowerCase(), m]));

/** Finds a model by id (case-insensitive). */
export function findModel(id: string): ModelSpec | undefined {
  return BY_ID.get(id.toLowerCase());
}

/**
 * A model SiliconFlow lists that the registry does not know: served with a generic schema (prompt,
 * negative_prompt, image_size, seed, num_inference_steps, and up to three input images passed on
 * as given; a video model takes SiliconFlow's video sizes and one first frame), and answered with a
 * note that its parameters were not checked here.
 */
export function genericModel(listed: { id: string; subType: string }): ModelSpec {
  const ownedBy = listed.id.includes("/") ? listed.id.split("/")[0] : "siliconflow";
  if (listed.subType === "video") {
    return {
      ...WAN,
      id: listed.id,
      ownedBy,
      inputImages: { min: 0, max: 1 },
      verified: false,
      unchecked: true,
    };
  }
  return {
    id: listed.id,
    ownedBy,
    inputImages: { min: listed.subType === "image-to-image" ? 1 : 0, max: 3 },
    params: {
      image_size: SIZE,
      seed: SEED,
      num_inference_steps: STEPS,
      negative_prompt: NEGATIVE,
    },
    sizes: [],
    verified: false,
    unchecked: true,
  };
}

/** Where a model alias points: the model for text-only requests, and optionally one for edits. */
export interface AliasTarget {
  /** Used when the request has no input images. */
  generate: string;
  /** Used when the request has input images; defaults to `generate`. */
  edit?: string;
}

/** The 404 for a model id that is neither a model nor an alias. */
export function modelNotFound(id: string, param = "model"): ApiError {
  return new ApiError(
    404,
    `The model '${id.slice(0, 200)}' does not exist here. Available: ${
      MODELS.map((m) => m.id).join(", ")
    } (see GET /v1/models).`,
    { param, code: "model_not_found" },
  );
}

/** Options of {@link resolveModel}. */
export interface ResolveOptions {
  /** Whether the request has input images: an alias then picks its edit model. */
  withImages: boolean;
  /** The request field that names the model, for errors. */
  param?: string;
}

/**
 * Resolves a model id or alias against the registry and `aliases` (a null-prototype map, so that
 * `constructor` is no alias). A 400 when none is given, a 404 when it is unknown.
 */
export function resolveModel(
  aliases: Readonly<Record<string, AliasTarget>>,
  id: unknown,
  options: ResolveOptions,
): ModelSpec {
  const param = options.param ?? "model";
  if (typeof id !== "string" || !id.trim()) {
    throw new ApiError(400, "model is required", { param, code: "missing_model" });
  }
  const key = id.trim().toLowerCase();
  const alias = Object.hasOwn(aliases, key) ? aliases[key] : undefined;
  const target = alias
    ? (options.withImages ? alias.edit ?? alias.generate : alias.generate)
    : id.trim();
  const model = findModel(target);
  if (!model) throw modelNotFound(id, param);
  return model;
}

/** Every parameter name that any model accepts: the fields picked out of a request body. */
export const UPSTREAM_PARAM_NAMES: readonly string[] = [
  ...new Set(MODELS.flatMap((m) => Object.keys(m.params))),
];

/** Whether a model takes `image_size`. */
export function takesImageSize(model: ModelSpec): boolean {
  return "image_size" in model.params;
}

/** Whether a model takes `batch_size` (several images from one call). */
export function batchLimit(model: ModelSpec): number {
  const spec = model.params.batch_size;
  return spec && spec.type === "integer" ? spec.max : 1;
}

/** `WIDTHxHEIGHT`, each side 64–4096. */
export const SIZE_PATTERN: RegExp = /^([1-9][0-9]{1,3})x([1-9][0-9]{1,3})$/;
