/**
 * OpenAI's Images API on top of the same registry, planner and SiliconFlow side as chat:
 * `POST /v1/images/generations` (JSON) and `POST /v1/images/edits` (multipart, or JSON with
 * `images: [{image_url}]`).
 * @module
 */
import {
  failureSummary,
  type GenerationOutcome,
  type GenerationPlan,
  planGeneration,
  runGeneration,
} from "../generation/plan.ts";
import { readJsonObject } from "../server/body.ts";
import { readMultipart } from "../server/multipart.ts";
import { ApiError, invalidParam } from "../server/errors.ts";
import { jsonResponse } from "../server/response.ts";
import { authorizeRequest, type RequestAuth } from "./auth.ts";
import { bodyLimits, type RequestContext } from "./context.ts";
import { metered } from "./metering.ts";
import { planHeaders, requestedModel, upstreamCaller } from "./planning.ts";
import { streamAnswer } from "./stream_answer.ts";
import {
  editsFormImages,
  editsJsonImages,
  type ImagesRequest,
  parseImagesFields,
  splitEditsForm,
} from "./images_request.ts";
import { imageCompleted, imageEventEncoder, type ImageStreamEvent } from "./images_stream.ts";
import { storeImages } from "./stored_images.ts";
import type { ImageData, ImagesResponse } from "./types.ts";

async function respond(
  ctx: RequestContext,
  outcome: GenerationOutcome,
  format: "url" | "b64_json",
  extraHeaders: Record<string, string>,
): Promise<Response> {
  const headers: Record<string, string> = { ...extraHeaders };
  const store = ctx.app.config.imageDelivery === "store" ? ctx.app.store : undefined;
  if (format === "url" && store) {
    const notes = await storeImages(ctx, store, outcome, ctx.signal);
    if (notes.length) headers["x-image-store-warning"] = notes.join(" ").slice(0, 500);
  }
  const data: ImageData[] = format === "url"
    ? outcome.images.map((image) => ({ url: image.url }))
    : await Promise.all(outcome.images.map(async (image) => ({
      b64_json: (await ctx.app.upstream.download(image.url, ctx.signal)).base64,
    })));
  const body: ImagesResponse = { created: Math.floor(ctx.app.now() / 1000), data };
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
  auth: RequestAuth,
  request: ImagesRequest,
  images: string[],
): Promise<Response> {
  const endpoint = images.length > 0 ? "edits" : "generations";
  const model = await requestedModel(ctx, auth, request.model, { withImages: images.length > 0 });
  if (model.video) {
    throw invalidParam(
      "model",
      `${model.id} makes videos: use POST /v1/videos (or chat) for it.`,
      "model_not_image",
    );
  }
  const plan = planGeneration({
    model,
    prompt: request.prompt,
    images,
    fields: request.fields,
    imagesParam: "image",
    promptParam: "prompt",
    strict: ctx.app.config.strictParams,
  });
  const release = ctx.app.slots.acquire();
  if (request.stream) {
    return streamImages(ctx, { auth, plan, endpoint, release, requested: String(request.model) });
  }
  try {
    const outcome = await metered(
      ctx,
      auth,
      { plan, requested: String(request.model) },
      () => runGeneration(plan, upstreamCaller(ctx, auth, ctx.signal)),
    );
    return await respond(ctx, outcome, request.responseFormat, planHeaders(plan));
  } finally {
    release();
  }
}

/** `stream: true`: each image as a completed event once it is made and downloaded. */
function streamImages(
  ctx: RequestContext,
  job: {
    auth: RequestAuth;
    plan: GenerationPlan;
    endpoint: "generations" | "edits";
    release: () => void;
    requested: string;
  },
): Promise<Response> {
  const { plan } = job;
  return streamAnswer<ImageStreamEvent>(ctx, {
    encoder: imageEventEncoder,
    keepAlive: () => ({ kind: "keepalive" }),
    failureEvents: (error) => [{ kind: "error", error }],
    headers: planHeaders(plan),
  }, async (out, signal) => {
    try {
      const outcome = await metered(
        ctx,
        job.auth,
        { plan, requested: job.requested },
        () => runGeneration(plan, upstreamCaller(ctx, job.auth, signal)),
      );
      const created = Math.floor(ctx.app.now() / 1000);
      for (const image of outcome.images) {
        const downloaded = await ctx.app.upstream.download(image.url, signal);
        out.send({
          kind: "image",
          event: imageCompleted(job.endpoint, downloaded, { created, size: plan.imageSize }),
        });
      }
      if (failureSummary(outcome)) throw outcome.failures[0];
    } finally {
      job.release();
    }
  });
}

/** `POST /v1/images/generations`. */
export async function imagesGenerations(ctx: RequestContext): Promise<Response> {
  const auth = await authorizeRequest(ctx);
  const fields = await readJsonObject(ctx.request, bodyLimits(ctx));
  return generate(ctx, auth, parseImagesFields(fields, "generations"), []);
}

/** `POST /v1/images/edits`: multipart files, or JSON `images: [{image_url}]`. */
export async function imagesEdits(ctx: RequestContext): Promise<Response> {
  const auth = await authorizeRequest(ctx);
  const type = ctx.request.headers.get("content-type") ?? "";
  if (type.startsWith("application/json")) {
    const fields = await readJsonObject(ctx.request, bodyLimits(ctx));
    const images = editsJsonImages(fields);
    return generate(ctx, auth, parseImagesFields(fields, "edits"), images);
  }
  if (!type.startsWith("multipart/form-data")) {
    throw new ApiError(415, "Send multipart/form-data with the image files (or JSON with images)", {
      code: "unsupported_media_type",
    });
  }
  const form = splitEditsForm(await readMultipart(ctx.request, bodyLimits(ctx)));
  const request = parseImagesFields(form.fields, "edits");
  const model = await requestedModel(ctx, auth, request.model, { withImages: true });
  return generate(ctx, auth, request, editsFormImages(form, model));
}
