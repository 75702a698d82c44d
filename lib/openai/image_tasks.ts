/**
 * Images made in the background: `POST /v1/images/generations/async` and `…/edits/async` (or the
 * synchronous routes with `Prefer: respond-async`) answer 202 at once with a task; `GET
 * /v1/images/tasks/{id}` answers it, and once completed its `result` is the body the synchronous
 * route would have answered. A CDN that cuts a request at 100 s no longer costs an image.
 * @module
 */
import { type ImageTask, type TaskEnd, timedOut } from "../jobs/image_task.ts";
import { isDone } from "../jobs/store.ts";
import { runGeneration } from "../generation/plan.ts";
import { ApiError, CLIENT_CLOSED } from "../server/errors.ts";
import { jsonResponse } from "../server/response.ts";
import { authorizeRequest } from "./auth.ts";
import { failure, type RequestContext } from "./context.ts";
import { imagesAnswer, imagesEdits, imagesGenerations, planImages } from "./images.ts";
import { reserveQuota } from "./metering.ts";
import { listResponse, ownerOf, ownPage } from "./owners.ts";
import { planHeaders, upstreamCaller } from "./planning.ts";
import { publicBase, storedImageLink } from "./stored_images.ts";
import { callbackOf } from "./callbacks.ts";
import { rewritePlan } from "./prompt_rewrite.ts";
import { bytesOf } from "../store/media_store.ts";

type Params = Readonly<Record<string, string | undefined>>;

/** How long a client is told to wait between polls, seconds. */
const RETRY_AFTER_S = 2;

/** Whether the client asked for an asynchronous answer (`Prefer: respond-async`, RFC 7240). */
function prefersAsync(ctx: RequestContext): boolean {
  const prefer = ctx.request.headers.get("prefer") ?? "";
  return ctx.app.store !== undefined && /(^|[,;\s])respond-async\b/i.test(prefer);
}

/** Where a task is polled, on this server's public base. */
function pollUrl(base: string, id: string): string {
  return `${base}/v1/images/tasks/${id}`;
}

/** A task as the API (and its webhook) shows it, its result's images as the links it keeps. */
export function taskObject(base: string, task: ImageTask): Record<string, unknown> {
  const shown: Record<string, unknown> = {
    id: task.id,
    object: "image.generation.task",
    status: task.status,
    model: task.model,
    created_at: Math.floor(task.created / 1000),
    completed_at: task.finished ? Math.floor(task.finished / 1000) : null,
    expires_at: Math.floor(task.expires / 1000),
    poll_url: pollUrl(base, task.id),
  };
  if (task.status === "completed" && task.result) shown.result = task.result;
  if (task.status === "failed" && task.error) shown.error = task.error;
  return shown;
}

/**
 * A result's images as `b64_json`, read from the store whatever origin its links name (or from
 * SiliconFlow, where an image could not be stored).
 */
async function asBase64(
  ctx: RequestContext,
  result: NonNullable<ImageTask["result"]>,
): Promise<Record<string, unknown>> {
  const data = await Promise.all(result.data.map(async ({ url }) => {
    const name = storedImageLink(url)?.name;
    const stored = name ? await ctx.app.store?.get(name) : undefined;
    if (stored) return { b64_json: (await bytesOf(stored)).toBase64() };
    return { b64_json: (await ctx.app.upstream.download(url, ctx.signal)).base64 };
  }));
  return { ...result, data };
}

/**
 * Submits an Images API request as a task: checked, planned and its quota reserved now (so a bad
 * request gets the synchronous route's error, never a 202 and a failed task), made in the
 * background on this instance, its images kept in the store.
 */
async function submit(ctx: RequestContext, endpoint: "generations" | "edits"): Promise<Response> {
  const { app } = ctx;
  const store = app.store;
  const planned = await planImages(ctx, endpoint);
  if (!store) {
    throw new ApiError(
      501,
      "Asynchronous image tasks keep their images in the image store, and this server runs without one (IMAGE_STORE=none). Use the synchronous route, or set IMAGE_STORE.",
      { code: "image_store_required" },
    );
  }
  const { auth, request, plan } = planned;
  const requested = String(request.model);
  const { callback, ignored } = await callbackOf(ctx, request.fields.callback_url);
  const settle = await reserveQuota(ctx, auth, { plan, requested });
  const headers = planHeaders(plan);
  // A task is never streamed: it is polled.
  if (request.stream) ignored.push("stream");
  if (ignored.length) headers["x-ignored-params"] = [...plan.ignored, ...ignored].join(", ");
  let task: ImageTask;
  try {
    task = await app.tasks.submit({
      owner: await ownerOf(ctx, auth),
      account: auth.account?.id,
      endpoint: planned.endpoint,
      model: plan.model.id,
      responseFormat: request.responseFormat,
      callback,
    }, async (signal, started): Promise<TaskEnd> => {
      let made = 0;
      try {
        const release = await slot(ctx, signal);
        try {
          await started();
          const ask = planned.ask;
          const rewrite = ask ? await rewritePlan(ctx, auth, plan, ask, signal) : undefined;
          const outcome = await runGeneration(plan, upstreamCaller(ctx, auth, signal));
          made = outcome.images.length;
          const { body } = await imagesAnswer(ctx, outcome, "url", store, signal, rewrite);
          return { result: body as NonNullable<ImageTask["result"]> };
        } finally {
          release();
        }
      } catch (err) {
        // Cut short: by the task's deadline, or by the shutdown grace (a 503 saying so).
        if (signal.aborted && !app.shutdownSignal.aborted) return { error: timedOut() };
        const cut = signal.aborted ? new ApiError(CLIENT_CLOSED, "stopped") : err;
        const { message, type, param, code } = failure(ctx, cut);
        return { error: { message, type, param, code: code ?? "generation_failed" } };
      } finally {
        await settle(made);
      }
    }, app.shutdownSignal);
  } catch (err) {
    await settle(0);
    throw err;
  }
  const url = pollUrl(publicBase(ctx), task.id);
  return jsonResponse(taskObject(publicBase(ctx), task), 202, {
    ...headers,
    location: url,
    "retry-after": String(RETRY_AFTER_S),
    "preference-applied": "respond-async",
    "cache-control": "no-store",
  });
}

/**
 * A generation slot for a task: it waits for one (queued), where a synchronous request would be
 * told 429, until its deadline.
 */
async function slot(ctx: RequestContext, signal: AbortSignal): Promise<() => void> {
  for (;;) {
    try {
      return ctx.app.slots.acquire();
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 429) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
      signal.throwIfAborted();
    }
  }
}

/** `POST /v1/images/generations/async`. */
export function imagesGenerationsAsync(ctx: RequestContext): Promise<Response> {
  return submit(ctx, "generations");
}

/** `POST /v1/images/edits/async`. */
export function imagesEditsAsync(ctx: RequestContext): Promise<Response> {
  return submit(ctx, "edits");
}

/**
 * `POST /v1/images/generations`, made in the background with `Prefer: respond-async` when the
 * server has an image store (a preference: without a store the answer is the synchronous one).
 */
export function imagesGenerationsRoute(ctx: RequestContext): Promise<Response> {
  return prefersAsync(ctx) ? submit(ctx, "generations") : imagesGenerations(ctx);
}

/** `POST /v1/images/edits`, made in the background with `Prefer: respond-async` (as above). */
export function imagesEditsRoute(ctx: RequestContext): Promise<Response> {
  return prefersAsync(ctx) ? submit(ctx, "edits") : imagesEdits(ctx);
}

/** `GET /v1/images/tasks/{id}`: the caller's own task (another key's, or an expired one: 404). */
export async function imageTaskRetrieve(ctx: RequestContext, params: Params): Promise<Response> {
  const auth = await authorizeRequest(ctx);
  const id = params.id ?? "";
  const task = /^imgtask_[\w-]{1,64}$/.test(id) ? await ctx.app.tasks.get(id) : undefined;
  if (!task || task.owner !== await ownerOf(ctx, auth)) {
    throw new ApiError(404, `No image task with id '${id.slice(0, 100)}' (or it has expired).`, {
      param: "task_id",
      code: "task_not_found",
    });
  }
  const headers: Record<string, string> = { "cache-control": "no-store" };
  if (!isDone(task)) headers["retry-after"] = String(RETRY_AFTER_S);
  const shown = taskObject(publicBase(ctx), task);
  if (task.result && task.responseFormat === "b64_json") {
    shown.result = await asBase64(ctx, task.result);
  }
  return jsonResponse(shown, 200, headers);
}

/** `GET /v1/images/tasks?after=…&limit=…&order=…`: the caller's tasks, newest first by default. */
export async function imageTasksList(ctx: RequestContext): Promise<Response> {
  const auth = await authorizeRequest(ctx);
  const page = await ownPage(ctx, auth, ctx.app.tasks.jobs);
  const now = ctx.app.now();
  // A list gives each result's links: base64 is read from the store only for one task by id.
  const live = page.jobs.filter((task) => now <= task.expires);
  return listResponse(
    { jobs: live, hasMore: page.hasMore },
    (task) =>
      taskObject(publicBase(ctx), task) as {
        id: string;
      },
  );
}
