/**
 * OpenAI's Videos API on SiliconFlow's video jobs: `POST /v1/videos` submits and answers at once,
 * `GET /v1/videos/{id}`, `GET /v1/videos` (cursor pages), `DELETE /v1/videos/{id}` and
 * `GET /v1/videos/{id}/content`. A key sees only its own jobs; another key's are a 404.
 * @module
 */
import { findModel, genericModel, MODELS, type ModelSpec } from "../generation/registry.ts";
import type { Callback } from "../jobs/webhook.ts";
import { callerListing } from "./models.ts";
import { keptDays } from "../store/config.ts";
import { readJsonObject } from "../server/body.ts";
import { ApiError, invalidParam } from "../server/errors.ts";
import { readMultipart } from "../server/multipart.ts";
import { jsonResponse } from "../server/response.ts";
import { isDone } from "../jobs/store.ts";
import { progressAt, type VideoJob } from "../jobs/video.ts";
import { authorizeRequest, type RequestAuth } from "./auth.ts";
import { ANONYMOUS, listResponse, ownerOf, ownPage } from "./owners.ts";
import { bodyLimits, type RequestContext } from "./context.ts";
import { checkModelAllowed } from "./metering.ts";
import { requestedModel } from "./planning.ts";
import { inlineOwnImages, MEDIA_HEADERS, publicBase, serveStored } from "./stored_images.ts";
import { callbackOf } from "./callbacks.ts";
import {
  parseVideoForm,
  parseVideoJson,
  type VideoObject,
  videoObject,
  type VideoRequest,
} from "./videos_request.ts";

type Params = Readonly<Record<string, string | undefined>>;

/** A 400 unless the model makes videos. */
function videoModel(model: ModelSpec): ModelSpec & { video: { seconds: number } } {
  if (!model.video) {
    throw invalidParam(
      "model",
      `${model.id} makes images, not videos: use POST /v1/images/generations, or a video model (sora-2, Wan-AI/Wan2.2-T2V-A14B, Wan-AI/Wan2.2-I2V-A14B).`,
      "model_not_video",
    );
  }
  return model as ModelSpec & { video: { seconds: number } };
}

/**
 * A video request from any route: its model resolved (a 400 unless it makes videos) and allowed
 * for a managed key, its own stored images inlined, then made by the video service.
 */
export async function createVideoJob(
  ctx: RequestContext,
  auth: RequestAuth,
  request: Omit<VideoRequest, "ignored"> & {
    imagesParam?: string;
    promptParam?: string;
    callback?: Callback;
  },
): Promise<{ job: VideoJob; ignored: string[] }> {
  const model = videoModel(
    await requestedModel(ctx, auth, request.model, { withImages: request.image !== undefined }),
  );
  const imagesParam = request.imagesParam ?? request.imageParam ?? "input_reference";
  const images = await inlineOwnImages(ctx, request.image ? [request.image] : [], imagesParam);
  if (auth.account) checkModelAllowed(auth.account, request.model, model);
  return await ctx.app.videos.create({
    auth,
    account: auth.account,
    owner: await ownerOf(ctx, auth),
    origin: ctx.url.origin,
    signal: ctx.signal,
    onTraceId: (id) => (ctx.log.traceId = id),
  }, {
    model,
    requested: request.model,
    prompt: request.prompt,
    images,
    fields: request.fields,
    imagesParam,
    promptParam: request.promptParam ?? "prompt",
    callback: request.callback,
  });
}

/** A job as the API shows it to this request. */
function shown(ctx: RequestContext, job: VideoJob): VideoObject {
  return videoObject(job, keptDays(ctx.app.config.imageStore), ctx.app.now(), publicBase(ctx));
}

/** `POST /v1/videos`: JSON, or multipart with `input_reference` as a file. */
export async function videosCreate(ctx: RequestContext): Promise<Response> {
  const auth = await authorizeRequest(ctx);
  const type = ctx.request.headers.get("content-type") ?? "";
  const request = type.startsWith("multipart/form-data")
    ? parseVideoForm(await readMultipart(ctx.request, bodyLimits(ctx)))
    : parseVideoJson(await readJsonObject(ctx.request, bodyLimits(ctx)));
  const hook = await callbackOf(ctx, request.fields.callback_url);
  const { job, ignored } = await createVideoJob(ctx, auth, { ...request, callback: hook.callback });
  ctx.log.outcome = "video_queued";
  const headers: Record<string, string> = {};
  const named = [...request.ignored, ...hook.ignored, ...ignored];
  if (named.length) headers["x-ignored-params"] = named.join(", ");
  return jsonResponse(shown(ctx, job), 200, headers);
}

/**
 * The caller's job, or a 404 (also for another key's; for a keyless caller, on anything but a
 * read). A job past its deadline is ended now; a client-paid one resumes polling here.
 */
async function ownJob(
  ctx: RequestContext,
  id: string | undefined,
  use: "read" | "delete" = "read",
): Promise<VideoJob> {
  const auth = await authorizeRequest(ctx);
  const videos = ctx.app.videos;
  let job = /^video_[\w-]{1,64}$/.test(id ?? "") ? await videos.jobs.get(id!) : undefined;
  const owner = await ownerOf(ctx, auth);
  if (!job || job.owner !== owner || (owner === ANONYMOUS && use !== "read")) {
    throw new ApiError(404, `No video with id '${String(id).slice(0, 100)}'.`, {
      param: "video_id",
      code: "video_not_found",
    });
  }
  job = await videos.poller.endIfLate(job);
  if (!isDone(job) && auth.kind === "client") await videos.poller.resume(job.id, auth.key);
  return job;
}

/** `GET /v1/videos/{id}`. */
export async function videosRetrieve(ctx: RequestContext, params: Params): Promise<Response> {
  return jsonResponse(shown(ctx, await ownJob(ctx, params.id)));
}

/** `GET /v1/videos?after=…&limit=…&order=…`: the caller's jobs, newest first by default. */
export async function videosList(ctx: RequestContext): Promise<Response> {
  const auth = await authorizeRequest(ctx);
  const page = await ownPage(ctx, auth, ctx.app.videos.jobs);
  return listResponse(page, (job) => shown(ctx, job));
}

/** `DELETE /v1/videos/{id}`: the job and its stored copy. */
export async function videosDelete(ctx: RequestContext, params: Params): Promise<Response> {
  const job = await ownJob(ctx, params.id, "delete");
  await ctx.app.videos.jobs.delete(job.id);
  ctx.app.videos.poller.forget(job.id);
  if (job.stored) await ctx.app.store?.delete(job.stored).catch(() => {});
  return jsonResponse({ id: job.id, object: "video.deleted", deleted: true });
}

/** `GET /v1/videos/{id}/content`: the MP4 (the stored copy, else SiliconFlow's link while it lives). */
export async function videosContent(ctx: RequestContext, params: Params): Promise<Response> {
  const job = await ownJob(ctx, params.id);
  const variant = ctx.url.searchParams.get("variant") ?? "video";
  if (variant !== "video") {
    throw new ApiError(
      404,
      `There is no ${
        variant.slice(0, 40)
      } for this video: SiliconFlow makes only the video itself.`,
      {
        param: "variant",
        code: "variant_not_found",
      },
    );
  }
  if (job.status !== "completed") {
    throw new ApiError(
      job.status === "failed" ? 400 : 409,
      job.status === "failed"
        ? `The video failed: ${job.error?.message ?? "no reason given"}`
        : `The video is not ready yet (${job.status}, ${
          progressAt(job, ctx.app.now())
        }%). Poll GET /v1/videos/${job.id}.`,
      { code: job.status === "failed" ? "video_failed" : "video_not_ready" },
    );
  }
  const gone = () =>
    new ApiError(410, "This video's copy is gone (deleted, or past the store's retention).", {
      code: "video_expired",
    });
  // Behind the caller's key: no shared cache may keep it.
  if (job.stored) return serveStored(ctx, job.stored, gone, "private, max-age=86400");
  if (!job.url || (job.urlExpires ?? 0) <= ctx.app.now()) {
    throw new ApiError(
      410,
      "This video was not stored (the server has no IMAGE_STORE), and SiliconFlow's link to it lapsed 10 minutes after it was made.",
      { code: "video_expired" },
    );
  }
  const upstream = await ctx.app.upstream.openVideo(
    job.url,
    ctx.signal,
    ctx.request.headers.get("range") ?? undefined,
  );
  if (!upstream.ok) {
    await upstream.body?.cancel();
    throw new ApiError(
      410,
      `SiliconFlow's link to this video no longer works (HTTP ${upstream.status}).`,
      {
        code: "video_expired",
      },
    );
  }
  const headers: Record<string, string> = {
    "content-type": "video/mp4",
    "cache-control": "private, max-age=600",
    ...MEDIA_HEADERS,
  };
  for (const name of ["content-length", "content-range", "accept-ranges", "etag"]) {
    const value = upstream.headers.get(name);
    if (value) headers[name] = value;
  }
  return new Response(upstream.body, { status: upstream.status, headers });
}

/** `GET /v1/videos/models`: what each video model takes, in OpenRouter's words and OpenAI's. */
export async function videosModels(ctx: RequestContext): Promise<Response> {
  const entries: [string, ModelSpec][] = MODELS.filter((m) => m.video).map((m) => [m.id, m]);
  for (const [alias, target] of Object.entries(ctx.app.config.modelAliases)) {
    const model = findModel(target.generate);
    if (model?.video && !findModel(alias)) entries.push([alias, model]);
  }
  for (const listed of await callerListing(ctx)) {
    if (listed.subType === "video" && !findModel(listed.id)) {
      entries.push([listed.id, genericModel(listed)]);
    }
  }
  const data = entries.map(([id, model]) => {
    const alias = ctx.app.config.modelAliases[id.toLowerCase()];
    const firstFrame = model.inputImages.max > 0 || (alias?.edit !== undefined);
    return {
      id,
      object: "model",
      owned_by: alias ? "alias" : model.ownedBy,
      canonical_slug: model.id,
      supported_resolutions: ["720p"],
      supported_aspect_ratios: model.sizes.map(ratioOf),
      supported_sizes: model.sizes,
      supported_durations: [model.video!.seconds],
      seconds: [String(model.video!.seconds)],
      supported_frame_images: firstFrame ? ["first_frame"] : [],
      generate_audio: false,
      verified: model.verified,
    };
  });
  return jsonResponse({ object: "list", data });
}

/** `1280x720` as `16:9`. */
function ratioOf(size: string): string {
  const [w, h] = size.split("x").map(Number);
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
  const d = gcd(w, h);
  return `${w / d}:${h / d}`;
}

/**
 * OpenAI's remix, edits, extensions and characters: SiliconFlow has no such operation, which is
 * said plainly rather than with a bare 404.
 */
export function videosUnsupported(ctx: RequestContext): Promise<Response> {
  const operation = /\/videos\/(?:[^/]+\/)?(remix|edits|extensions|characters)/.exec(
    ctx.pathname,
  )?.[1] ?? "this operation";
  return Promise.reject(
    new ApiError(
      400,
      `SiliconFlow has no video ${operation}: its video models (Wan 2.2) make a new video from a prompt and, optionally, a first frame. Create a new video with POST /v1/videos instead.`,
      { param: null, code: "unsupported_operation" },
    ),
  );
}
