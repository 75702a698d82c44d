/**
 * OpenAI's Images API on top of the same registry, planner and SiliconFlow client as chat:
 * `POST /v1/images/generations` (JSON) and `POST /v1/images/edits` (multipart, or JSON with
 * `images: [{image_url}]`).
 * @module
 */
import { encodeBase64 } from "@std/encoding/base64";
import { z } from "zod";
import { zodError } from "./chat_request.ts";
import {
  acquireGenerationSlot,
  authorize,
  downloadGenerated,
  jsonResponse,
  readFormData,
  readJsonObject,
  type RequestContext,
  resolveModel,
  type UpstreamAuth,
  upstreamCaller,
} from "./context.ts";
import { ApiError, invalidParam } from "./errors.ts";
import { checkImageRef, sniffImageType } from "./image_ref.ts";
import {
  checkImageCount,
  failureSummary,
  type GenerationOutcome,
  planGeneration,
  runGeneration,
} from "./generation.ts";

/** The largest input image accepted by `/v1/images/edits`, per file. */
export const MAX_EDIT_IMAGE_BYTES: number = 10 * 1024 * 1024;

/** The model used when a request names none (OpenAI's own default is `dall-e-2`). */
export const DEFAULT_IMAGES_MODEL = "dall-e-2";

const Common = z.looseObject({
  prompt: z.string({ error: "prompt is required and must be a string" }),
  model: z.string().nullish(),
  response_format: z.enum(["url", "b64_json"]).nullish(),
  user: z.string().nullish(),
});

async function respond(
  ctx: RequestContext,
  outcome: GenerationOutcome,
  format: "url" | "b64_json",
  signal: AbortSignal,
): Promise<Response> {
  const data = format === "url"
    ? outcome.images.map((image) => ({ url: image.url }))
    : await Promise.all(outcome.images.map(async (image) => ({
      b64_json: (await downloadGenerated(ctx, image.url, signal)).base64,
    })));
  const body: Record<string, unknown> = { created: Math.floor(ctx.now() / 1000), data };
  const headers: Record<string, string> = {};
  const failed = failureSummary(outcome);
  if (failed) {
    body.partial_failure = {
      failed: outcome.failures.length,
      requested: outcome.images.length + outcome.failures.length,
      message: failed,
    };
    headers["x-partial-failure"] = failed.replace(/[^\x20-\x7e]/g, "?").slice(0, 500);
  }
  return jsonResponse(body, 200, headers);
}

/** The requested model, or the default when none is named. */
function modelField(fields: Record<string, unknown>): unknown {
  return fields.model ?? DEFAULT_IMAGES_MODEL;
}

async function generate(
  ctx: RequestContext,
  auth: UpstreamAuth,
  fields: Record<string, unknown>,
  images: string[],
): Promise<Response> {
  const parsed = Common.safeParse(fields);
  if (!parsed.success) throw zodError(parsed.error);
  const model = resolveModel(ctx, modelField(fields), images.length > 0);
  ctx.log.model = model.id;
  const plan = planGeneration({
    model,
    prompt: parsed.data.prompt,
    images,
    fields,
    imagesParam: "image",
    promptParam: "prompt",
  });
  const release = acquireGenerationSlot(ctx);
  try {
    const outcome = await runGeneration(plan, upstreamCaller(ctx, auth, ctx.signal));
    return await respond(ctx, outcome, parsed.data.response_format ?? "url", ctx.signal);
  } finally {
    release();
  }
}

/** `POST /v1/images/generations`. */
export async function imagesGenerations(ctx: RequestContext): Promise<Response> {
  const auth = authorize(ctx);
  return generate(ctx, auth, await readJsonObject(ctx), []);
}

/** `POST /v1/images/edits`: multipart files, or JSON `images: [{image_url}]`. */
export async function imagesEdits(ctx: RequestContext): Promise<Response> {
  const auth = authorize(ctx);
  const type = ctx.request.headers.get("content-type") ?? "";
  if (type.startsWith("application/json")) {
    const fields = await readJsonObject(ctx);
    if (fields.mask !== undefined) throw maskError();
    const list = Array.isArray(fields.images) ? fields.images : [];
    const images = list.map((entry, i) =>
      checkImageRef(
        entry && typeof entry === "object"
          ? (entry as Record<string, unknown>).image_url
          : undefined,
        `images[${i}].image_url`,
      )
    );
    return generate(ctx, auth, fields, images);
  }
  if (!type.startsWith("multipart/form-data")) {
    throw new ApiError(415, "Send multipart/form-data with the image files (or JSON with images)", {
      code: "unsupported_media_type",
    });
  }
  const form = await readFormData(ctx);
  if (form.has("mask")) throw maskError();
  const fields: Record<string, unknown> = {};
  const parts: [string, FormDataEntryValue][] = [];
  for (const [name, value] of form.entries()) {
    if (name === "image" || name === "image[]") parts.push([name, value]);
    else if (typeof value === "string") fields[name] = value;
  }
  if (parts.length === 0) {
    throw invalidParam(
      "image",
      "Attach at least one image file as image or image[]",
      "image_required",
    );
  }
  // Count first: only the images that will be sent are converted.
  const model = resolveModel(ctx, modelField(fields), true);
  checkImageCount(model, parts.length, "image");
  const images: string[] = [];
  for (const [name, value] of parts) images.push(await toDataUri(value, name, images.length));
  return generate(ctx, auth, fields, images);
}

function maskError(): ApiError {
  return invalidParam(
    "mask",
    "mask is not supported: SiliconFlow's edit models take no mask. Describe the change in the prompt instead.",
    "unsupported_parameter",
  );
}

async function toDataUri(value: FormDataEntryValue, name: string, index: number): Promise<string> {
  if (typeof value === "string") return checkImageRef(value, name);
  if (value.size > MAX_EDIT_IMAGE_BYTES) {
    throw invalidParam(
      name,
      `Image ${
        index + 1
      } is ${value.size} bytes; the limit is ${MAX_EDIT_IMAGE_BYTES} bytes per image`,
      "image_too_large",
    );
  }
  const bytes = new Uint8Array(await value.arrayBuffer());
  const mime = sniffImageType(bytes);
  if (!mime) {
    throw invalidParam(
      name,
      `Image ${index + 1} (${value.name || "unnamed"}) is not a png, jpeg, webp or gif file`,
      "invalid_image_format",
    );
  }
  return `data:${mime};base64,${encodeBase64(bytes)}`;
}
