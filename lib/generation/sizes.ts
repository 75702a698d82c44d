/**
 * Size mapping shared by chat and the Images API: OpenAI sizes, aspect ratios and free `WxH`
 * values become a size the model can take.
 * @module
 */
import { invalidParam } from "../server/errors.ts";
import { present } from "../server/values.ts";
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

/** Where a size can come from, strongest first. */
export interface SizeRequest {
  /** An explicit SiliconFlow `image_size`. */
  imageSize?: unknown;
  /** An aspect ratio such as `16:9`. */
  aspectRatio?: unknown;
  /** An OpenAI `size`. */
  size?: unknown;
}

/**
 * Resolves the `image_size` to send, or undefined for models that take none.
 * An explicit `image_size` wins, then `aspect_ratio`, then `size`; without any, the model's
 * default. The result is validated later by the model's schema.
 */
export function resolveImageSize(model: ModelSpec, req: SizeRequest): unknown {
  if (!takesImageSize(model)) return undefined;
  if (present(req.imageSize)) return req.imageSize;
  if (present(req.aspectRatio)) {
    const ratio = typeof req.aspectRatio === "string"
      ? parseAspectRatio(req.aspectRatio)
      : undefined;
    if (ratio === undefined) {
      throw invalidParam(
        "aspect_ratio",
        "aspect_ratio must look like 16:9 (between 1:10 and 10:1)",
      );
    }
    return nearestSize(model, ratio) ?? model.sizes[0];
  }
  const size = req.size;
  if (!present(size) || size === "auto") return model.sizes[0];
  if (typeof size !== "string" || sizeRatio(size) === undefined) {
    throw invalidParam("size", "size must be WIDTHxHEIGHT (e.g. 1024x1024) or auto");
  }
  if (model.sizes.includes(size)) return size;
  // A video model takes only its few sizes: any other is the nearest of them (portrait,
  // landscape or square).
  if (OPENAI_SIZES.includes(size) || model.video) {
    return nearestSize(model, sizeRatio(size)!) ?? size;
  }
  return size;
}
