/**
 * The request side of the Images API: the shared zod schema, and the three bodies it comes in —
 * generations JSON, edits JSON (`images: [{image_url}]`) and edits multipart (files as `image`,
 * `image[]`). Multipart images are counted against the model before any is converted.
 * @module
 */
import { z } from "zod";
import { checkImageCount } from "../generation/plan.ts";
import type { ModelSpec } from "../generation/registry.ts";
import { invalidParam } from "../server/errors.ts";
import { zodError } from "../generation/zod_error.ts";
import type { FilePart, MultipartPart } from "../server/multipart.ts";
import { isJsonObject } from "../values.ts";
import { checkImageRef, sniffImageType } from "../siliconflow/image_ref.ts";

/** The largest input image accepted by `/v1/images/edits`, per file. */
export const MAX_EDIT_IMAGE_BYTES: number = 10 * 1024 * 1024;

/** The model used when a request names none (OpenAI's own default is `dall-e-2`). */
export const DEFAULT_IMAGES_MODEL = "dall-e-2";

const Common = z.looseObject({
  prompt: z.string({ error: "prompt is required and must be a string" }),
  model: z.string().nullish(),
  response_format: z.enum(["url", "b64_json"]).nullish(),
  // Multipart bodies carry it as text.
  stream: z.union([z.boolean(), z.enum(["true", "false"])], {
    error: "stream must be true or false",
  }).nullish(),
});

/** An Images API request, checked. */
export interface ImagesRequest {
  /** The whole body, for the per-model parameters. */
  fields: Record<string, unknown>;
  /** The prompt. */
  prompt: string;
  /** The requested model (the default when none is named). */
  model: unknown;
  /** As asked, or what OpenAI would answer for this model and endpoint. */
  responseFormat: "url" | "b64_json";
  /** Whether to answer with OpenAI's image streaming events. */
  stream: boolean;
}

/** OpenAI's GPT image models, which always answer base64 at OpenAI. */
const GPT_IMAGE = /^\s*(gpt-image|chatgpt-image)/i;

/**
 * What OpenAI answers when the client names no `response_format`: base64 for the GPT image
 * models, and for edits other than `dall-e-2`'s; a URL for DALL·E names and SiliconFlow ids.
 * Clients that talk to GPT image models send none and read only `b64_json`.
 */
function defaultFormat(model: unknown, endpoint: "generations" | "edits"): "url" | "b64_json" {
  if (typeof model === "string" && GPT_IMAGE.test(model)) return "b64_json";
  if (endpoint === "edits" && model !== "dall-e-2") return "b64_json";
  return "url";
}

/** Checks the fields every Images API body shares. */
export function parseImagesFields(
  fields: Record<string, unknown>,
  endpoint: "generations" | "edits",
): ImagesRequest {
  const parsed = Common.safeParse(fields);
  if (!parsed.success) throw zodError(parsed.error);
  const model = fields.model ?? DEFAULT_IMAGES_MODEL;
  return {
    fields,
    prompt: parsed.data.prompt,
    model,
    responseFormat: parsed.data.response_format ?? defaultFormat(model, endpoint),
    stream: parsed.data.stream === true || parsed.data.stream === "true",
  };
}

/**
 * The input images of an edits JSON body: OpenAI's `images: [{image_url}]` (or plain links in the
 * list), or `image` as one link or a list of them, as a form names it. A 400 without any.
 */
export function editsJsonImages(fields: Record<string, unknown>): string[] {
  if (Array.isArray(fields.images) && fields.images.length) {
    return fields.images.map((entry, i) =>
      isJsonObject(entry)
        ? checkImageRef(entry.image_url, `images[${i}].image_url`)
        : checkImageRef(entry, `images[${i}]`)
    );
  }
  const { image } = fields;
  if (Array.isArray(image) && image.length) {
    return image.map((entry, i) => checkImageRef(entry, `image[${i}]`));
  }
  if (typeof image === "string") return [checkImageRef(image, "image")];
  throw invalidParam(
    "images",
    "Attach at least one image, as images: [{image_url}] (a link or a data URI)",
    "image_required",
  );
}

/** An edits multipart body split into its text fields and its image parts (not yet converted). */
export interface EditsForm {
  /** The text fields. */
  fields: Record<string, unknown>;
  /** The image parts, by field name, in order: a file, or a text field holding a URL. */
  parts: MultipartPart[];
}

/**
 * Splits an edits form; a 400 without any image. A mask file is kept by its name only: no model
 * takes one, so it is named as ignored.
 */
export function splitEditsForm(form: readonly MultipartPart[]): EditsForm {
  const fields: Record<string, unknown> = {};
  const parts: MultipartPart[] = [];
  for (const [name, value] of form) {
    if (name === "image" || name === "image[]") parts.push([name, value]);
    else if (typeof value === "string") fields[name] = value;
    else if (name === "mask") fields.mask = value.filename || "file";
  }
  if (parts.length === 0) {
    throw invalidParam(
      "image",
      "Attach at least one image file as image or image[]",
      "image_required",
    );
  }
  return { fields, parts };
}

/** The form's images as data URIs, counted against the model first. */
export function editsFormImages(form: EditsForm, model: ModelSpec): string[] {
  checkImageCount(model, form.parts.length, "image");
  return form.parts.map(([name, value], i) => toDataUri(value, name, i));
}

/** A form's image as a data URI (a text field holds a URL or a data URI). */
export function toDataUri(value: string | FilePart, name: string, index: number): string {
  if (typeof value === "string") return checkImageRef(value, name);
  const { bytes } = value;
  if (bytes.byteLength > MAX_EDIT_IMAGE_BYTES) {
    throw invalidParam(
      name,
      `Image ${
        index + 1
      } is ${bytes.byteLength} bytes; the limit is ${MAX_EDIT_IMAGE_BYTES} bytes per image`,
      "image_too_large",
    );
  }
  const mime = sniffImageType(bytes);
  if (!mime) {
    throw invalidParam(
      name,
      `Image ${index + 1} (${value.filename || "unnamed"}) is not a png, jpeg, webp or gif file`,
      "invalid_image_format",
    );
  }
  return `data:${mime};base64,${bytes.toBase64()}`;
}
