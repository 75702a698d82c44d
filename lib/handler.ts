/**
 * The composition root: builds the {@link App} once (configuration, the SiliconFlow side, the
 * slots and budgets) and hands the OpenAI route table to the request pipeline. The only module
 * that imports across every folder of `lib/`.
 * @module
 */
import type { Config } from "./config.ts";
import { MAX_N } from "./generation/registry.ts";
import { GenerationSlots } from "./generation/slots.ts";
import { type App, failure, type RequestContext } from "./openai/context.ts";
import { ROUTES } from "./openai/routes.ts";
import { BodyBudget, BodyShare } from "./server/body_budget.ts";
import { createLogger, type Logger } from "./server/logger.ts";
import { createPipeline, type LogFields } from "./server/pipeline.ts";
import { type RequestSignal, RequestSignals } from "./server/request_signals.ts";
import { TRACE_HEADER } from "./siliconflow/client.ts";
import { createUpstream } from "./siliconflow/upstream.ts";
import { createImageStore } from "./store/create.ts";
import { QuotaStore } from "./quota/store.ts";
import { VideoJobStore } from "./store/video_jobs.ts";
import { VideoPoller } from "./openai/video_jobs.ts";

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
   * Starts polling the video jobs left unfinished on KV (a restart) at once, rather than at the
   * first video request. `main.ts` sets it; tests that build handlers in process do not.
   */
  resumeVideoJobs?: boolean;
}

/** A request handler, as `Deno.serve` and `export default { fetch }` take it. */
export type Handler = (request: Request) => Promise<Response>;

/**
 * Builds the server's request handler.
 *
 * @example Serve it
 * ```ts
 * import { createHandler, loadConfig } from "../mod.ts";
 *
 * const handler = createHandler({ config: loadConfig(() => undefined) });
 * const response = await handler(new Request("http://localhost/healthz"));
 * console.assert(response.status === 200);
 * ```
 */
export function createHandler(options: HandlerOptions): Handler {
  const { config } = options;
  const now = options.now ?? Date.now;
  const logger = options.logger ??
    createLogger(config.logFormat, undefined, undefined, config.logLevel);
  const shutdownSignal = options.shutdownSignal ?? new AbortController().signal;
  const store = createImageStore(config.imageStore, logger, now);
  const quota = config.adminApiKey ? new QuotaStore(config.kvPath, now) : undefined;
  const upstream = createUpstream(config, {
    fetch: options.fetch,
    logger,
    now,
    // Each generation makes up to MAX_N upstream calls.
    maxInFlight: config.maxConcurrency * MAX_N,
    // The rules are zod schemas, loaded after start-up.
    rules: async (body) => (await import("./generation/schemas.ts")).upstreamRules(body),
    videoRules: async (body) => (await import("./generation/schemas.ts")).videoRules(body),
  });
  const jobs = new VideoJobStore(config.kvPath, now);
  const poller = new VideoPoller({
    config,
    jobs,
    upstream,
    store,
    quota,
    logger,
    now,
    shutdownSignal,
  });
  if (options.resumeVideoJobs) poller.start();
  const app: App = {
    config,
    now,
    logger,
    upstream,
    slots: new GenerationSlots(config.maxConcurrency),
    streams: { count: 0 },
    bodyBudget: new BodyBudget(config.maxBodyBufferBytes),
    shutdownSignal,
    store,
    quota,
    videos: { jobs, poller },
  };
  const signals = new RequestSignals(shutdownSignal);
  return createPipeline<RequestContext>({
    routes: ROUTES,
    context: (request, pathname, requestId) =>
      new Context(app, request, pathname, requestId, signals),
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
}

/**
 * One request's context. A class rather than an object literal: a held stream keeps its context
 * for tens of seconds, thousands at a time, and a literal with a getter is built as a dictionary
 * with closures of its own.
 */
class Context implements RequestContext {
  readonly app: App;
  readonly request: Request;
  readonly pathname: string;
  readonly requestId: string;
  readonly log: LogFields = {};
  readonly bodyShare: BodyShare;
  streamDone?: Promise<number>;
  #signal: RequestSignal;
  #url: URL | undefined;

  constructor(
    app: App,
    request: Request,
    pathname: string,
    requestId: string,
    signals: RequestSignals,
  ) {
    this.app = app;
    this.request = request;
    this.pathname = pathname;
    this.requestId = requestId;
    this.bodyShare = new BodyShare(app.bodyBudget);
    this.#signal = signals.lazy(request);
  }

  get signal(): AbortSignal {
    return this.#signal.signal;
  }

  get url(): URL {
    return this.#url ??= new URL(this.request.url);
  }

  abort(): void {
    this.#signal.abort(new DOMException("The client went away", "AbortError"));
  }

  finish(): void {
    this.bodyShare.release();
    this.#signal.done();
  }
}
