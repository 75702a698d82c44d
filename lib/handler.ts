/**
 * The composition root: builds the {@link App} once (configuration, the SiliconFlow side, the
 * slots and budgets) and hands the OpenAI route table to the request pipeline. The only module
 * that imports across every folder of `lib/`.
 * @module
 */
import type { Config } from "./config.ts";
import { MAX_N } from "./generation/registry.ts";
import { GenerationSlots } from "./generation/slots.ts";
import type { App } from "./app.ts";
import { failure, type RequestContext } from "./openai/context.ts";
import { ROUTES } from "./openai/routes.ts";
import { MCP_ROUTES } from "./mcp/routes.ts";
import { BodyShare } from "./server/body.ts";
import { createLogger, type Logger } from "./server/logger.ts";
import { createPipeline, type LogFields } from "./server/pipeline.ts";
import { TRACE_HEADER } from "./siliconflow/client.ts";
import { createUpstream } from "./siliconflow/upstream.ts";
import { keptDays } from "./store/config.ts";
import { createMediaStore } from "./store/create.ts";
import { QuotaStore } from "./quota/store.ts";
import { Instance } from "./jobs/instance.ts";
import { JobPoller } from "./jobs/poller.ts";
import { JobStore } from "./jobs/store.ts";
import { type VideoJob, VideoKind } from "./jobs/video.ts";
import { VideoService } from "./jobs/video_service.ts";
import { type ImageTask, ImageTaskKind, ImageTasks } from "./jobs/image_task.ts";
import { Webhooks } from "./jobs/webhook.ts";
import { ApiError } from "./server/errors.ts";
import { KvConnection } from "./kv.ts";
import { soon } from "./time_limit.ts";

/**
 * How this instance's heartbeat and scans run, from `VIDEO_POLL_MS`: the heartbeat lives three
 * polls (at most 15 s) and scans run every two thirds of that, so after a crash another instance
 * takes a job (and gives back the dead requests' quota) within five polls, 25 s by default.
 */
export function jobTiming(config: Config): { ttlMs: number; scanMs: number } {
  const ttlMs = Math.min(15_000, Math.max(1_000, 3 * config.videoPollMs));
  return { ttlMs, scanMs: Math.round((ttlMs * 2) / 3) };
}

/** How long ended jobs are kept: the local store's `IMAGE_TTL_DAYS`, else its default. */
function retentionDays(config: Config): number {
  return keptDays(config.imageStore) ?? 30;
}

/** How long after start-up the jobs left by a stopped process are taken over. */
const RESUME_AFTER_MS = 20;

function jobStoreUnavailable(err: unknown): ApiError {
  return new ApiError(
    503,
    "The job store is unavailable; video jobs and image tasks cannot be read now.",
    {
      code: "job_store_unavailable",
      headers: { "retry-after": "5" },
      cause: err,
    },
  );
}

/** Dependencies of {@link createHandler}; everything but `config` has a default. */
export interface HandlerOptions {
  /** The configuration (see `loadConfig`). */
  config: Config;
  /** The fetch used for upstream calls. */
  fetch?: typeof fetch;
  /** Where log records go. */
  logger?: Logger;
  /** The clock. */
  now?: () => number;
  /**
   * Aborting it stops every in-flight generation: streamed answers end with an error event,
   * others with a 503. `main.ts` aborts it when the shutdown grace has run out.
   */
  shutdownSignal?: AbortSignal;
  /**
   * Starts polling the video jobs left unfinished on KV (a restart) just after start-up, rather
   * than at the first video request. `main.ts` sets it; tests that build handlers in process do
   * not.
   */
  resumeVideoJobs?: boolean;
}

/** A request handler, as `Deno.serve` and `export default { fetch }` take it, that can be closed. */
export interface Handler {
  (request: Request): Promise<Response>;
  /**
   * Stops the background work (polling jobs) and hands this instance's jobs over to the others at
   * once. Requests still being answered keep working: call it when the server stops accepting.
   */
  handOver(): Promise<void>;
  /** Hands over, then stops the timers and closes the KV: once no request is left. */
  close(): Promise<void>;
}

/**
 * Builds the server's request handler.
 *
 * @example Serve it
 * ```ts
 * import { createHandler, loadConfig } from "../mod.ts";
 *
 * const handler = createHandler({ config: loadConfig(() => undefined) });
 * const response = await handler(new Request("http://localhost/healthz"));
 * if (response.status !== 200) throw new Error(`status ${response.status}`);
 * await handler.close();
 * ```
 */
export function createHandler(options: HandlerOptions): Handler {
  const { config } = options;
  const now = options.now ?? Date.now;
  const logger = options.logger ??
    createLogger(config.logFormat, undefined, undefined, config.logLevel);
  const shutdownSignal = options.shutdownSignal ?? new AbortController().signal;
  const store = createMediaStore(config.imageStore, logger, now);
  const timing = jobTiming(config);
  // One KV connection for the stores on it: they never wait on each other's SQLite lock.
  const kv = new KvConnection(config.kvPath);
  const instance = new Instance(kv, { ...timing, now, logger });
  const quota = config.adminApiKey ? new QuotaStore(kv, now, instance) : undefined;
  if (quota) instance.onScan(async () => void await quota.recover());
  const upstream = createUpstream(config, {
    fetch: options.fetch,
    logger,
    now,
    // Each generation makes up to MAX_N upstream calls.
    maxInFlight: config.maxConcurrency * MAX_N,
    // The stand-in of demo mode, with the registry's rules (zod schemas, loaded after start-up).
    demo: () =>
      import("./demo/upstream.ts").then((m) =>
        m.createDemoUpstream({
          rules: async (body) => (await import("./generation/schemas.ts")).upstreamRules(body),
          videoRules: async (body) => (await import("./generation/schemas.ts")).videoRules(body),
        })
      ),
  });
  const jobs = new JobStore<VideoJob>("video", kv, {
    now,
    retentionMs: retentionDays(config) * 86_400_000,
    unavailable: jobStoreUnavailable,
  });
  const webhooks = new Webhooks({
    secret: config.webhookSecret,
    allowPrivate: config.webhookAllowPrivate,
    fetch: options.fetch ?? globalThis.fetch,
    logger,
    now,
  });
  // A webhook's data is the object the API answers; its module loads after start-up (zod).
  const kind = new VideoKind({
    config,
    jobs,
    upstream,
    store,
    quota,
    logger,
    now,
    webhooks,
    describe: async (job, base) =>
      (await import("./openai/videos_request.ts")).videoObject(
        job,
        keptDays(config.imageStore),
        now(),
        base,
      ),
  });
  const poller = new JobPoller({
    kind,
    instance,
    timing: {
      pollMs: config.videoPollMs,
      maxPollMs: 6 * config.videoPollMs,
      checksAtOnce: 8,
      followUpsAtOnce: 4,
    },
    now,
    logger,
    shutdownSignal,
  });
  const videos = new VideoService({ config, jobs, poller, upstream, quota, logger, now });
  const taskJobs = new JobStore<ImageTask>("image_task", kv, {
    now,
    retentionMs: config.imageTaskTtlMs,
    unavailable: jobStoreUnavailable,
  });
  // Image tasks run where they were submitted; this poller only fails those whose instance died.
  const taskPoller = new JobPoller({
    kind: new ImageTaskKind(taskJobs, {
      webhooks,
      describe: async (task, base) =>
        (await import("./openai/image_tasks.ts")).taskObject(base, task),
      now,
    }),
    instance,
    timing: { pollMs: 1_000, maxPollMs: 1_000, checksAtOnce: 8, followUpsAtOnce: 1 },
    now,
    logger,
    shutdownSignal,
  });
  const tasks = new ImageTasks({
    jobs: taskJobs,
    poller: taskPoller,
    now,
    ttlMs: config.imageTaskTtlMs,
    // The upstream call, a wait for a slot and the copy into the store.
    timeoutMs: config.upstreamTimeoutMs + 120_000,
  });
  // Work left by a process that stopped is taken over just after start-up, rather than at the
  // first video: opening the KV and the first timer (see `soon`) would hold the first answers.
  let handedOver: Promise<void> | undefined;
  if (options.resumeVideoJobs) {
    soon(RESUME_AFTER_MS, () => {
      if (handedOver) return;
      poller.start();
      taskPoller.start();
    });
  } else if (quota) instance.start().catch(() => {});
  const app: App = {
    config,
    now,
    logger,
    upstream,
    slots: new GenerationSlots(config.maxConcurrency),
    streams: { count: 0 },
    bodyBudget: { held: 0, limit: config.maxBodyBufferBytes },
    shutdownSignal,
    store,
    quota,
    videos,
    tasks,
    webhooks,
    dispatch: (request) => handle(request),
  };
  const handle = createPipeline<RequestContext>({
    routes: [...MCP_ROUTES, ...ROUTES],
    context: (request, pathname, requestId) => new Context(app, request, pathname, requestId),
    failure,
    logger,
    now,
    traceHeader: TRACE_HEADER,
    exposeHeaders: [
      "x-ignored-params",
      "x-parameter-checks",
      "x-partial-failure",
      "x-image-store-warning",
    ],
  });
  const handOver = () =>
    handedOver ??= Promise.all([poller.stop(), taskPoller.stop()]).then(() => {});
  return Object.assign(handle, {
    handOver,
    async close() {
      await handOver();
      // Tasks running here finish (within the shutdown grace) before the heartbeat is withdrawn.
      await taskPoller.drain();
      // Withdrawn last: reservations of requests answered until now stay this instance's.
      await instance.close();
      store?.close();
      await kv.close();
    },
  });
}

/** One request's context. */
class Context implements RequestContext {
  readonly app: App;
  readonly request: Request;
  readonly pathname: string;
  readonly requestId: string;
  readonly log: LogFields = {};
  readonly bodyShare: BodyShare;
  streamDone?: Promise<number>;
  // Aborted when the client cancels a streamed answer.
  #cancelled = new AbortController();
  #signal: AbortSignal | undefined;
  #url: URL | undefined;

  constructor(app: App, request: Request, pathname: string, requestId: string) {
    this.app = app;
    this.request = request;
    this.pathname = pathname;
    this.requestId = requestId;
    this.bodyShare = new BodyShare(app.bodyBudget);
  }

  /** Aborts when the client goes away or the shutdown grace runs out. */
  get signal(): AbortSignal {
    return this.#signal ??= AbortSignal.any([
      this.request.signal,
      this.app.shutdownSignal,
      this.#cancelled.signal,
    ]);
  }

  get url(): URL {
    return this.#url ??= new URL(this.request.url);
  }

  abort(): void {
    this.#cancelled.abort(new DOMException("The client went away", "AbortError"));
  }

  finish(): void {
    this.bodyShare.release();
  }
}
