/**
 * One size vocabulary for every route: `WxH`, a ratio `W:H` (in `size` or `aspect_ratio`), a tier
 * `1K`/`2K`/`4K` (alone or with a ratio, as OpenRouter's `image_config.image_size` sends it), or
 * `auto`, mapped to a size the model takes: its recommended table, its enum, or within its limits.
 * @module
 */
import { invalidParam } from "../server/errors.ts";
import { present } from "../values.ts";
import { type ModelSpec, SIZE_PATTERN, takesImageSize } from "./registry.ts";

/** The sizes OpenAI clients send; they map to the model's nearest recommended size. */
export const OPENAI_SIZES: readonly string[] = [
  "256x256",
  "512x512",
  "1024x1024",
  "1792x1024",
  "1024x1792",
  "1536x1024",
  "1024x1536",
];

/** The tiers and the side of their square: `1K` is about a megapixel, `4K` sixteen. */
export const SIZE_TIERS: Readonly<Record<string, number>> = { "1k": 1024, "2k": 2048, "4k": 4096 };

/** The longest side SiliconFlow's `image_size` takes. */
const MAX_SIDE = 4096;

/** Width / height of a `WxH` string, or undefined when it is not one. */
export function sizeRatio(size: string): number | undefined {
  const m = SIZE_PATTERN.exec(size);
  return m ? Number(m[1]) / Number(m[2]) : undefined;
}

/** Parses an aspect ratio such as `16:9` (or `16/9`, `1.5`) to width / height. */
export function parseAspectRatio(value: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:[:/]\s*(\d+(?:\.\d+)?))?\s*$/.exec(value);
  if (!m) return undefined;
  const ratio = Number(m[1]) / (m[2] === undefined ? 1 : Number(m[2]));
  return Number.isFinite(ratio) && ratio >= 0.1 && ratio <= 10 ? ratio : undefined;
}

/** The model's recommended size whose aspect ratio is nearest `ratio`; ties keep list order. */
export function nearestSize(model: ModelSpec, ratio: number): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const size of model.sizes) {
    const distance = Math.abs(Math.log(sizeRatio(size)! / ratio));
    if (distance < bestDistance - 1e-9) {
      best = size;
      bestDistance = distance;
    }
  }
  return best;
}

/** What one size value says: an exact `WxH`, a ratio, a tier, or any two of the last. */
interface SizeWords {
  exact?: string;
  ratio?: number;
  tier?: number;
}

const SIZE_HELP =
  "WIDTHxHEIGHT with each side 64 to 4096 (e.g. 1024x1024), a ratio such as 16:9, a tier 1K, 2K or 4K (alone or with a ratio, e.g. 16:9 2K), or auto";

/** Reads a size value in any of the vocabulary's forms; undefined for `auto` or nothing. */
export function parseSizeWords(value: unknown, param: string): SizeWords | undefined {
  if (!present(value) || value === "auto") return undefined;
  const text = typeof value === "string" ? value.trim().toLowerCase() : undefined;
  if (text !== undefined && SIZE_PATTERN.test(text)) return { exact: text, ratio: sizeRatio(text) };
  const words: SizeWords = {};
  const wrong = () => invalidParam(param, `${param} must be ${SIZE_HELP}`);
  if (text === undefined) throw wrong();
  for (const word of text.split(/[\s,@]+/)) {
    if (Object.hasOwn(SIZE_TIERS, word) && words.tier === undefined) words.tier = SIZE_TIERS[word];
    else if (word.includes(":") && words.ratio === undefined) {
      words.ratio = parseAspectRatio(word);
      if (words.ratio === undefined) throw wrong();
    } else throw wrong();
  }
  return words;
}

/** Where a size can come from, strongest first. */
export interface SizeRequest {
  /** SiliconFlow's `image_size` (`WxH`), or OpenRouter's tier in `image_config.image_size`. */
  imageSize?: unknown;
  /** An aspect ratio such as `16:9`. */
  aspectRatio?: unknown;
  /** An OpenAI `size`, or any other form of the vocabulary. */
  size?: unknown;
}

/** `WxH` of about `side`² pixels at `ratio`, in steps of 16, no side over the limit. */
function sizeAt(side: number, ratio: number): string {
  let width = side * Math.sqrt(ratio);
  let height = side / Math.sqrt(ratio);
  const over = Math.max(width, height) / MAX_SIDE;
  if (over > 1) [width, height] = [width / over, height / over];
  const step = (v: number) => Math.min(MAX_SIDE, Math.max(64, Math.round(v / 16) * 16));
  return `${step(width)}x${step(height)}`;
}

/**
 * Resolves the `image_size` to send, or undefined for models that take none.
 * An explicit `WxH` in `image_size` wins; otherwise the ratio comes from `aspect_ratio` or `size`,
 * and the tier from `image_size` or `size`. Without any, the model's first recommended size.
 * - A model with a fixed set of sizes (an enum, or a video model) gets the one nearest in ratio.
 * - A ratio alone, an OpenAI size or `1K` gets the recommended size nearest in ratio when one is
 *   within 10 % of it; otherwise the model's usual pixel count at that ratio, in steps of 16.
 * - `2K` and `4K` on a model that takes free sizes get that many pixels at the ratio (1:1 if none).
 * - Any other valid `WxH` goes through as is. The result is validated by the model's schema.
 */
export function resolveImageSize(model: ModelSpec, req: SizeRequest): unknown {
  if (!takesImageSize(model)) return undefined;
  const given = parseSizeWords(req.imageSize, "image_size");
  if (given?.exact) return given.exact;
  let ratio: number | undefined;
  if (present(req.aspectRatio)) {
    ratio = typeof req.aspectRatio === "string" ? parseAspectRatio(req.aspectRatio) : undefined;
    if (ratio === undefined) {
      throw invalidParam(
        "aspect_ratio",
        "aspect_ratio must look like 16:9 (between 1:10 and 10:1)",
      );
    }
  }
  const size = parseSizeWords(req.size, "size");
  const exact = ratio === undefined ? size?.exact : undefined;
  ratio ??= size?.ratio;
  const tier = given?.tier ?? size?.tier;
  const fixed = model.params.image_size?.type === "enum";
  if (exact && !fixed && (model.sizes.includes(exact) || !OPENAI_SIZES.includes(exact))) {
    return exact;
  }
  if (ratio === undefined && tier === undefined) return model.sizes[0];
  ratio ??= 1;
  if (fixed) return nearestSize(model, ratio);
  if (tier !== undefined && tier > 1024) return sizeAt(tier, ratio);
  const near = nearestSize(model, ratio);
  if (near && Math.abs(Math.log(sizeRatio(near)! / ratio)) <= Math.log(RATIO_SLACK)) return near;
  // No recommended size has about this shape: the model's usual pixel count at the ratio.
  const usual = near ? Math.sqrt(area(model.sizes[0])) : 1024;
  return sizeAt(usual, ratio);
}

/** How far (as a factor) a recommended size's ratio may be from the one asked for. */
const RATIO_SLACK = 1.1;

function area(size: string): number {
  const [w, h] = size.split("x").map(Number);
  return w * h;
}
