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
import type { MediaStore } from "../store/media_store.ts";
import {
  type PromptRewrite,
  type RewriteAsk,
  rewriteAsked,
  rewriteNote,
  rewritePlan,
} from "./prompt_rewrite.ts";

/**
 * The Images API's answer to an outcome: links (stored first, when `store` is given) or base64,
 * and a partial failure said in the body and a header.
 */
export async function imagesAnswer(
  ctx: RequestContext,
  outcome: GenerationOutcome,
  format: "url" | "b64_json",
  store: MediaStore | undefined,
  signal: AbortSignal,
  rewrite?: PromptRewrite,
): Promise<{ body: ImagesResponse; headers: Record<string, string> }> {
  const headers: Record<string, string> = {};
  if (format === "url" && store) {
    const notes = await storeImages(ctx, store, outcome, signal);
    if (notes.length) headers["x-image-store-warning"] = notes.join(" ").slice(0, 500);
  }
  const data: ImageData[] = format === "url"
    ? outcome.images.map((image) => ({ url: image.url }))
    : await Promise.all(outcome.images.map(async (image) => ({
      b64_json: (await ctx.app.upstream.download(image.url, signal)).base64,
    })));
  const body: ImagesResponse = { created: Math.floor(ctx.app.now() / 1000), data };
  if (rewrite) describeRewrite(body, rewrite);
  const failed = failureSummary(outcome);
  if (failed) {
    body.partial_failure = {
      failed: outcome.failures.length,
      requested: outcome.images.length + outcome.failures.length,
      message: failed,
    };
    headers["x-partial-failure"] = failed.replace(/[^\x20-\x7e]/g, "?").slice(0, 500);
  }
  return { body, headers };
}

/** What a prompt rewrite did, in the Images API's words: `revised_prompt`, usage, or a failure. */
function describeRewrite(body: ImagesResponse, rewrite: PromptRewrite): void {
  if (rewrite.revised) { for (const image of body.data) image.revised_prompt = rewrite.revised; }
  else body.prompt_rewrite = { status: "failed", message: rewriteNote(rewrite)[0] };
  const { prompt_tokens, completion_tokens, total_tokens } = rewrite.usage;
  body.usage = {
    input_tokens: prompt_tokens,
    input_tokens_details: { text_tokens: prompt_tokens, image_tokens: 0 },
    output_tokens: completion_tokens,
    total_tokens,
  };
}

async function respond(
  ctx: RequestContext,
  outcome: GenerationOutcome,
  format: "url" | "b64_json",
  extraHeaders: Record<string, string>,
  rewrite?: PromptRewrite,
): Promise<Response> {
  const store = ctx.app.config.imageDelivery === "store" ? ctx.app.store : undefined;
  const { body, headers } = await imagesAnswer(ctx, outcome, format, store, ctx.signal, rewrite);
  return jsonResponse(body, 200, { ...extraHeaders, ...headers });
}

/** An Images API request, checked and planned: what the synchronous and the async routes run. */
export interface PlannedImages {
  /** Who pays. */
  auth: RequestAuth;
  /** The parsed request. */
  request: ImagesRequest;
  /** Which route it came to. */
  endpoint: "generations" | "edits";
  /** The upstream calls. */
  plan: GenerationPlan;
  /** Whether to rewrite the prompt first. */
  ask?: RewriteAsk;
}

/**
 * Reads, checks and plans an Images API request (JSON; for edits also multipart, or JSON with
 * `images: [{image_url}]`): every error the synchronous route gives a bad request.
 */
export async function planImages(
  ctx: RequestContext,
  endpoint: "generations" | "edits",
): Promise<PlannedImages> {
  const auth = await authorizeRequest(ctx);
  const { request, images } = await readImagesRequest(ctx, auth, endpoint);
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
  const edit = images.length > 0;
  const ask = rewriteAsked(ctx, auth, request.fields, edit, plan.ignored);
  return { auth, request, endpoint: edit ? "edits" : "generations", plan, ask };
}

/** The request and its input images, as data URIs or links. */
async function readImagesRequest(
  ctx: RequestContext,
  auth: RequestAuth,
  endpoint: "generations" | "edits",
): Promise<{ request: ImagesRequest; images: string[] }> {
  if (endpoint === "generations") {
    const fields = await readJsonObject(ctx.request, bodyLimits(ctx));
    return { request: parseImagesFields(fields, "generations"), images: [] };
  }
  const type = ctx.request.headers.get("content-type") ?? "";
  if (type.startsWith("application/json")) {
    const fields = await readJsonObject(ctx.request, bodyLimits(ctx));
    return { request: parseImagesFields(fields, "edits"), images: editsJsonImages(fields) };
  }
  if (!type.startsWith("multipart/form-data")) {
    throw new ApiError(415, "Send multipart/form-data with the image files (or JSON with images)", {
      code: "unsupported_media_type",
    });
  }
  const form = splitEditsForm(await readMultipart(ctx.request, bodyLimits(ctx)));
  const request = parseImagesFields(form.fields, "edits");
  const model = await requestedModel(ctx, auth, request.model, { withImages: true });
  return { request, images: editsFormImages(form, model) };
}

/** Makes the images now: the answer, or a stream of them with `stream: true`. */
async function makeImages(ctx: RequestContext, planned: PlannedImages): Promise<Response> {
  const { auth, request, plan, endpoint, ask } = planned;
  const release = ctx.app.slots.acquire();
  if (request.stream) {
    const job = { auth, plan, endpoint, release, requested: String(request.model), ask };
    return streamImages(ctx, job);
  }
  try {
    const rewrite = ask ? await rewritePlan(ctx, auth, plan, ask, ctx.signal) : undefined;
    const outcome = await metered(
      ctx,
      auth,
      { plan, requested: String(request.model) },
      () => runGeneration(plan, upstreamCaller(ctx, auth, ctx.signal)),
    );
    return await respond(ctx, outcome, request.responseFormat, planHeaders(plan), rewrite);
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
    ask?: RewriteAsk;
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
      const rewrite = job.ask ? await rewritePlan(ctx, job.auth, plan, job.ask, signal) : undefined;
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
          event: imageCompleted(job.endpoint, downloaded, {
            created,
            size: plan.imageSize,
            revised: rewrite?.revised,
          }),
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
  return makeImages(ctx, await planImages(ctx, "generations"));
}

/** `POST /v1/images/edits`: multipart files, or JSON `images: [{image_url}]`. */
export async function imagesEdits(ctx: RequestContext): Promise<Response> {
  return makeImages(ctx, await planImages(ctx, "edits"));
}
