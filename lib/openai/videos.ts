/**
 * OpenAI's Videos API on SiliconFlow's video jobs: `POST /v1/videos` submits and answers at once,
 * `GET /v1/videos/{id}`, `GET /v1/videos` (cursor pages), `DELETE /v1/videos/{id}` and
 * `GET /v1/videos/{id}/content`. A key sees only its own jobs; another key's are a 404.
 * @module
 */
import type { ModelSpec } from "../generation/registry.ts";
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
import { inlineOwnImages, MEDIA_HEADERS, serveStored } from "./stored_images.ts";
import {
  parseVideoForm,
  parseVideoJson,
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
  request: VideoRequest & { imagesParam?: string; promptParam?: string },
): Promise<{ job: VideoJob; ignored: string[] }> {
  const model = videoModel(
    await requestedModel(ctx, auth, request.model, { withImages: request.image !== undefined }),
  );
  const imagesParam = request.imagesParam ?? "input_reference";
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
  });
}

function keptDays(ctx: RequestContext): number | undefined {
  const store = ctx.app.config.imageStore;
  return store?.kind === "local" ? store.ttlDays : undefined;
}

/** `POST /v1/videos`: JSON, or multipart with `input_reference` as a file. */
export async function videosCreate(ctx: RequestContext): Promise<Response> {
  const auth = await authorizeRequest(ctx);
  const type = ctx.request.headers.get("content-type") ?? "";
  const request = type.startsWith("multipart/form-data")
    ? parseVideoForm(await readMultipart(ctx.request, bodyLimits(ctx)))
    : parseVideoJson(await readJsonObject(ctx.request, bodyLimits(ctx)));
  const { job, ignored } = await createVideoJob(ctx, auth, request);
  ctx.log.outcome = "video_queued";
  const headers: Record<string, string> = {};
  if (ignored.length) headers["x-ignored-params"] = ignored.join(", ");
  return jsonResponse(videoObject(job, keptDays(ctx), ctx.app.now()), 200, headers);
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
  return jsonResponse(videoObject(await ownJob(ctx, params.id), keptDays(ctx), ctx.app.now()));
}

/** `GET /v1/videos?after=…&limit=…&order=…`: the caller's jobs, newest first by default. */
export async function videosList(ctx: RequestContext): Promise<Response> {
  const auth = await authorizeRequest(ctx);
  const page = await ownPage(ctx, auth, ctx.app.videos.jobs);
  return listResponse(page, (job) => videoObject(job, keptDays(ctx), ctx.app.now()));
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
