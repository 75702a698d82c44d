/**
 * Every answer this server gives, in one table: method, `URLPattern` and handler. `/v1` may be
 * left out, as some clients do; model ids contain a slash.
 * @module
 */
import { preflight } from "../server/pipeline.ts";
import { jsonResponse } from "../server/response.ts";
import { noRoute, path, type Route } from "../server/router.ts";
import { DEMO_IMAGE_PREFIX } from "../siliconflow/client.ts";
import { VERSION } from "../version.ts";
import type { RequestContext } from "./context.ts";
import { modelsList, modelsRetrieve } from "./models.ts";
import { serveStoredMedia } from "./stored_images.ts";

type Handle = Route<RequestContext>["handle"];

/** A module imported once, when first needed. */
function once<M>(load: () => Promise<M>): () => Promise<M> {
  let loaded: Promise<M> | undefined;
  return () => loaded ??= load();
}

// The routes that validate with zod are loaded after start-up: zod and the schemas take about
// 60 ms to load, twice what the server takes to listen without them. `preloadRoutes()` loads
// them right after the server listens; a request that comes sooner waits for them.
const chat = once(() => import("./chat_completions.ts"));
const images = once(() => import("./image_tasks.ts"));
const responsesApi = once(() => import("./responses.ts"));
const admin = once(() => import("./admin.ts"));
const videos = once(() => import("./videos.ts"));
const page = once(() => import("../playground/page.ts"));

/** A route handler from a module loaded on first use. */
function lazy<M>(module: () => Promise<M>, pick: (m: M) => Handle): Handle {
  return async (ctx, params) => await pick(await module())(ctx, params);
}

/** Loads the routes that are loaded on first use (`main.ts` calls it once the server listens). */
export async function preloadRoutes(): Promise<void> {
  await Promise.all([
    chat(),
    images(),
    responsesApi(),
    admin(),
    videos(),
    page(),
    import("./model_schema.ts"),
  ]);
}

/** `GET /healthz`: liveness, mode, what is in flight and the server keys' state; no secrets. */
function health(ctx: RequestContext): Promise<Response> {
  const { app } = ctx;
  const keys = app.upstream.keyStatus();
  return Promise.resolve(jsonResponse({
    status: app.shutdownSignal.aborted ? "stopping" : "ok",
    version: VERSION,
    mode: app.config.demo ? "demo" : app.config.keyMode,
    in_flight: { generations: app.slots.inFlight, streams: app.streams.count },
    upstream_keys: keys?.map((k) => k.state),
    upstream_keys_back_in_s: keys?.map((k) => k.back_in_s),
  }));
}

/** `GET /demo/images/…`: the stand-in's images, in demo mode only. */
function demoImages(ctx: RequestContext): Promise<Response> {
  const serve = ctx.app.upstream.demoImages;
  if (!serve) {
    throw noRoute("GET", ctx.url.pathname);
  }
  return serve(ctx.request);
}

/** The playground's page and files (`PLAYGROUND=false` turns them off). */
async function playground(ctx: RequestContext): Promise<Response> {
  const response = ctx.app.config.playground
    ? (await page()).playgroundAsset(ctx.url.pathname)
    : undefined;
  if (!response) {
    throw noRoute("GET", ctx.url.pathname);
  }
  return response;
}

/** The route table. */
export const ROUTES: readonly Route<RequestContext>[] = [
  { method: "OPTIONS", pattern: path("*"), handle: (ctx) => preflight(ctx.request) },
  { method: "GET", pattern: path("/healthz"), handle: health },
  { method: "GET", pattern: path("/"), handle: playground },
  {
    method: "GET",
    pattern: path("/playground{/:file(app.js|form.js|video.js|app.css)}?"),
    handle: playground,
  },
  { method: "GET", pattern: path("/favicon.svg"), handle: playground },
  { method: "GET", pattern: path(`${DEMO_IMAGE_PREFIX}*`), handle: demoImages },
  { method: "GET", pattern: path("/images/:name"), handle: serveStoredMedia },
  // Only a stored video's name: `/videos/{id}` without `/v1` is the Videos API's.
  {
    method: "GET",
    pattern: path("/videos/:name([A-Za-z0-9_-]{22}\\.mp4)"),
    handle: serveStoredMedia,
  },
  {
    method: "POST",
    pattern: path("{/v1}?/videos"),
    handle: lazy(videos, (m) => m.videosCreate),
  },
  { method: "GET", pattern: path("{/v1}?/videos"), handle: lazy(videos, (m) => m.videosList) },
  {
    method: "GET",
    pattern: path("{/v1}?/videos/models"),
    handle: lazy(videos, (m) => m.videosModels),
  },
  // OpenAI's operations that SiliconFlow has no counterpart of: a 400 that says so.
  ...[
    ["POST", "{/v1}?/videos/:id/remix"],
    ["POST", "{/v1}?/videos/edits"],
    ["POST", "{/v1}?/videos/extensions"],
    ["POST", "{/v1}?/videos/characters"],
    ["GET", "{/v1}?/videos/characters/:id"],
  ].map(([method, pattern]) => ({
    method,
    pattern: path(pattern),
    handle: lazy(videos, (m) => m.videosUnsupported),
  })),
  {
    method: "GET",
    pattern: path("{/v1}?/videos/:id/content"),
    handle: lazy(videos, (m) => m.videosContent),
  },
  {
    method: "GET",
    pattern: path("{/v1}?/videos/:id"),
    handle: lazy(videos, (m) => m.videosRetrieve),
  },
  {
    method: "DELETE",
    pattern: path("{/v1}?/videos/:id"),
    handle: lazy(videos, (m) => m.videosDelete),
  },
  {
    method: "POST",
    pattern: path("{/v1}?/chat/completions"),
    handle: lazy(chat, (m) => m.chatCompletions),
  },
  {
    method: "POST",
    pattern: path("{/v1}?/responses"),
    handle: lazy(responsesApi, (m) => m.responses),
  },
  {
    method: "POST",
    pattern: path("{/v1}?/images/generations"),
    handle: lazy(images, (m) => m.imagesGenerationsRoute),
  },
  {
    method: "POST",
    pattern: path("{/v1}?/images/edits"),
    handle: lazy(images, (m) => m.imagesEditsRoute),
  },
  {
    method: "POST",
    pattern: path("{/v1}?/images/generations/async"),
    handle: lazy(images, (m) => m.imagesGenerationsAsync),
  },
  {
    method: "POST",
    pattern: path("{/v1}?/images/edits/async"),
    handle: lazy(images, (m) => m.imagesEditsAsync),
  },
  {
    method: "GET",
    pattern: path("{/v1}?/images/tasks"),
    handle: lazy(images, (m) => m.imageTasksList),
  },
  {
    method: "GET",
    pattern: path("{/v1}?/images/tasks/:id"),
    handle: lazy(images, (m) => m.imageTaskRetrieve),
  },
  { method: "GET", pattern: path("{/v1}?/models"), handle: modelsList },
  { method: "GET", pattern: path("{/v1}?/usage"), handle: lazy(admin, (m) => m.ownUsage) },
  { method: "POST", pattern: path("/admin/v1/keys"), handle: lazy(admin, (m) => m.createKey) },
  { method: "GET", pattern: path("/admin/v1/keys"), handle: lazy(admin, (m) => m.listKeys) },
  { method: "PATCH", pattern: path("/admin/v1/keys/:id"), handle: lazy(admin, (m) => m.updateKey) },
  {
    method: "DELETE",
    pattern: path("/admin/v1/keys/:id"),
    handle: lazy(admin, (m) => m.deleteKey),
  },
  { method: "GET", pattern: path("/admin/v1/usage"), handle: lazy(admin, (m) => m.adminUsage) },
  { method: "GET", pattern: path("{/v1}?/models/:id(.+)"), handle: modelsRetrieve },
];
