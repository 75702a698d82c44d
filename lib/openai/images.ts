/**
 * OpenAI's Images API on top of the same registry, planner and SiliconFlow side as chat:
 * `POST /v1/images/generations` (JSON) and `POST /v1/images/edits` (multipart, or JSON with
 * `images: [{image_url}]`).
 * @module
 */
import {
  failureSummary,
  type GenerationOutcome,
  planGeneration,
  runGeneration,
} from "../generation/plan.ts";
import { readFormData, readJsonObject } from "../server/body.ts";
import { ApiError } from "../server/errors.ts";
import { jsonResponse } from "../server/response.ts";
import { authorize, type UpstreamAuth } from "../siliconflow/keys.ts";
import { bodyLimits, type RequestContext, requestedModel, upstreamCaller } from "./context.ts";
import {
  editsFormImages,
  editsJsonImages,
  type ImagesRequest,
  parseImagesFields,
  splitEditsForm,
} from "./images_request.ts";
import type { ImageData, ImagesResponse } from "./types.ts";

async function respond(
  ctx: RequestContext,
  outcome: GenerationOutcome,
  format: "url" | "b64_json",
): Promise<Response> {
  const data: ImageData[] = format === "url"
    ? outcome.images.map((image) => ({ url: image.url }))
    : await Promise.all(outcome.images.map(async (image) => ({
      b64_json: (await ctx.app.upstream.download(image.url, ctx.signal)).base64,
    })));
  const body: ImagesResponse = { created: Math.floor(ctx.app.now() / 1000), data };
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
  return jsonResponse(body satisfies ImagesResponse, 200, headers);
}

async function generate(
  ctx: RequestContext,
  auth: UpstreamAuth,
  request: ImagesRequest,
  images: string[],
): Promise<Response> {
  const model = requestedModel(ctx, request.model, { withImages: images.length > 0 });
  const plan = planGeneration({
    model,
    prompt: request.prompt,
    images,
    fields: request.fields,
    imagesParam: "image",
    promptParam: "prompt",
  });
  const release = ctx.app.slots.acquire();
  try {
    const outcome = await runGeneration(plan, upstreamCaller(ctx, auth, ctx.signal));
    return await respond(ctx, outcome, request.responseFormat);
  } finally {
    release();
  }
}

/** `POST /v1/images/generations`. */
export async function imagesGenerations(ctx: RequestContext): Promise<Response> {
  const auth = authorize(ctx.request.headers, ctx.app.config);
  const fields = await readJsonObject(ctx.request, bodyLimits(ctx));
  return generate(ctx, auth, parseImagesFields(fields), []);
}

/** `POST /v1/images/edits`: multipart files, or JSON `images: [{image_url}]`. */
export async function imagesEdits(ctx: RequestContext): Promise<Response> {
  const auth = authorize(ctx.request.headers, ctx.app.config);
  const type = ctx.request.headers.get("content-type") ?? "";
  if (type.startsWith("application/json")) {
    const fields = await readJsonObject(ctx.request, bodyLimits(ctx));
    const images = editsJsonImages(fields);
    return generate(ctx, auth, parseImagesFields(fields), images);
  }
  if (!type.startsWith("multipart/form-data")) {
    throw new ApiError(415, "Send multipart/form-data with the image files (or JSON with images)", {
      code: "unsupported_media_type",
    });
  }
  const form = splitEditsForm(await readFormData(ctx.request, bodyLimits(ctx)));
  const request = parseImagesFields(form.fields);
  const model = requestedModel(ctx, request.model, { withImages: true });
  return generate(ctx, auth, request, await editsFormImages(form, model));
}
