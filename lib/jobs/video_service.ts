/**
 * Making a video, whichever route asks (`/v1/videos`, chat, the Responses API): checks the request
 * against its model, reserves a video on a managed key's quota, keeps the job on KV before
 * SiliconFlow's submit (so a paid job is never lost to a failed write after it), submits, and hands
 * the job to this instance's poller. Waiting for a job costs no image slot and reads no KV each
 * second: a waiter hears the poller's changes in process.
 * @module
 */
import type { Config } from "../config.ts";
import type { ModelSpec } from "../generation/registry.ts";
import { GenerationSlots } from "../generation/slots.ts";
import { errorText, type Logger } from "../server/logger.ts";
import { present, randomToken } from "../values.ts";
import type { UpstreamAuth } from "../siliconflow/keys.ts";
import type { Upstream } from "../siliconflow/upstream.ts";
import type { KeyRecord, QuotaStore } from "../quota/store.ts";
import type { JobPoller } from "./poller.ts";
import { isDone, type JobStore } from "./store.ts";
import type { VideoJob } from "./video.ts";
import type { Callback } from "./webhook.ts";

/** Who asks for a video: the key that pays, a managed key's record, and the job's owner. */
export interface VideoCaller {
  /** Which key pays. */
  auth: UpstreamAuth;
  /** The managed key, when one was used (its video quota is reserved). */
  account?: KeyRecord;
  /** Who may see the job (see `ownerOf` in lib/openai/owners.ts). */
  owner: string;
  /** The origin the request came to. */
  origin: string;
  /** Aborts the submit when the client goes away. */
  signal: AbortSignal;
  /** Hears SiliconFlow's trace id. */
  onTraceId?: (id: string) => void;
}

/** A video request, its model resolved and its images inlined. */
export interface VideoOrder {
  model: ModelSpec & { video: { seconds: number } };
  /** The model as the client named it. */
  requested: string;
  prompt: string;
  images: string[];
  fields: Record<string, unknown>;
  /** The request field the images came in, for errors. */
  imagesParam: string;
  /** The request field the prompt came in, for errors. */
  promptParam: string;
  /** The webhook to send when it ends. */
  callback?: Callback;
}

/** How often a waiter reads its job itself: only to hear another instance's writes (a hand-over). */
function backstopMs(config: Config): number {
  return Math.min(15_000, 10 * config.videoPollMs);
}

/** What the video service needs of the server. */
export interface VideoServiceDeps {
  config: Config;
  jobs: JobStore<VideoJob>;
  poller: JobPoller<VideoJob>;
  upstream: Upstream;
  quota?: QuotaStore;
  logger: Logger;
  now: () => number;
}

/** Video jobs: their records, this instance's poller, and the limit on chats waiting for one. */
export class VideoService {
  readonly jobs: JobStore<VideoJob>;
  readonly poller: JobPoller<VideoJob>;
  /** Requests waiting for a video (chat, Responses): their own limit, not the image slots. */
  readonly waits: GenerationSlots;
  readonly #deps: VideoServiceDeps;

  constructor(deps: VideoServiceDeps) {
    this.jobs = deps.jobs;
    this.poller = deps.poller;
    this.waits = new GenerationSlots(videoWaitLimit(deps.config), "video answers are waiting");
    this.#deps = deps;
  }

  /** Submits a video; answers the job and the fields the model ignored. */
  async create(
    caller: VideoCaller,
    order: VideoOrder,
  ): Promise<{ job: VideoJob; ignored: string[] }> {
    const { config, quota, upstream, logger } = this.#deps;
    const { model } = order;
    const ignored: string[] = [];
    let images = order.images;
    if (images.length > model.inputImages.max) {
      images = [];
      ignored.push(order.imagesParam);
    }
    const { n: _n, batch_size: _b, ...fields } = order.fields;
    // Planning validates with zod, which start-up does not load (see lib/openai/routes.ts).
    const { planGeneration } = await import("../generation/plan.ts");
    const plan = planGeneration({
      model,
      prompt: order.prompt,
      images,
      fields,
      imagesParam: order.imagesParam,
      promptParam: order.promptParam,
      strict: config.strictParams,
    });
    const seconds = String(model.video.seconds);
    // OpenAI's `seconds` and OpenRouter's `duration`: the model makes what it makes.
    for (const name of ["seconds", "duration"]) {
      const asked = order.fields[name];
      if (asked !== undefined && asked !== null && String(asked) !== seconds) ignored.push(name);
    }
    // OpenRouter's `resolution`: every size Wan 2.2 takes is 720p.
    const resolution = order.fields.resolution;
    if (present(resolution) && String(resolution).toLowerCase() !== "720p") {
      ignored.push("resolution");
    }
    ignored.push(...plan.ignored);
    const { account } = caller;
    const reservation = account && quota ? await quota.reserve(account, 1, "videos") : undefined;
    const created = this.jobs.newCreated();
    const job: VideoJob = {
      id: `video_${randomToken(18)}`,
      owner: caller.owner,
      account: account?.id,
      model: model.id,
      requested: order.requested,
      prompt: plan.calls[0].prompt as string,
      size: plan.imageSize ?? model.sizes[0],
      seconds,
      status: "queued",
      progress: 0,
      created,
      // SiliconFlow's 720p jobs take about 3 minutes; the stand-in's, seconds.
      expectedMs: config.demo ? 4_000 : 180_000,
      requestId: "",
      clientKey: caller.auth.kind === "client",
      origin: caller.origin,
      deadline: created + config.videoJobTimeoutMs,
      ...(order.callback ? { callback: order.callback } : {}),
    };
    const warn = (msg: string) => (err: unknown) =>
      logger({
        level: "warn",
        msg,
        key_id: account?.id,
        job: job.id,
        error: errorText(err),
      });
    // Kept first: the reservation becomes the job's in the same write.
    try {
      await this.jobs.create(job, this.poller.holder, reservation?.key);
    } catch (err) {
      await reservation?.release(1).catch(warn("could not give back a video's quota"));
      throw err;
    }
    let submitted: { requestId: string; keyRef?: string };
    try {
      submitted = await upstream.videos({
        auth: caller.auth,
        signal: caller.signal,
        origin: () => caller.origin,
        onTraceId: caller.onTraceId,
      }).submit(plan.calls[0]);
    } catch (err) {
      // SiliconFlow took nothing: the job goes, and so does its reservation. A job that cannot be
      // deleted now is failed by a scan later, which gives its video back then.
      const deleted = await this.jobs.delete(job.id).catch(
        warn("could not delete a refused video job"),
      );
      if (deleted && account && quota) {
        await quota.giveBack(account.id, "videos", 1, created).catch(
          warn("could not give back a video's quota"),
        );
      }
      throw err;
    }
    const accepted = { requestId: submitted.requestId, keyRef: submitted.keyRef };
    try {
      await this.poller.write(job.id, accepted);
    } catch (err) {
      // Paid for at SiliconFlow: say so loudly, with what it takes to find the video there.
      logger({
        level: "error",
        msg: "SiliconFlow accepted a video whose job could not be updated; it will be failed",
        job: job.id,
        request_id: submitted.requestId,
        key_id: account?.id,
        error: errorText(err),
      });
      throw err;
    }
    if (account && quota) {
      await quota.record(account.id, model.id, { requested: 1, made: 0, failures: 0 })
        .catch(warn("could not record a video's usage"));
    }
    const key = caller.auth.kind === "client" ? caller.auth.key : undefined;
    this.poller.hold(job.id, key, config.videoPollMs);
    return { job: { ...job, ...accepted }, ignored };
  }

  /**
   * Waits for a job to end, up to `until` (ms) or until `signal` aborts; `seen` hears each change.
   * Answers its last record.
   */
  waitFor(
    job: VideoJob,
    until: number,
    signal: AbortSignal,
    seen: (job: VideoJob) => void,
  ): Promise<VideoJob> {
    if (isDone(job) || signal.aborted) return Promise.resolve(job);
    const { now, config } = this.#deps;
    return new Promise((resolve) => {
      let latest = job;
      const heard = (next: VideoJob) => {
        latest = next;
        seen(next);
        if (isDone(next)) finish();
      };
      const unsubscribe = this.poller.subscribe(job.id, heard);
      const timeout = setTimeout(finish, Math.max(0, until - now()));
      const backstop = setInterval(() => {
        this.jobs.get(job.id).then((next) => next && heard(next), () => {});
      }, backstopMs(config));
      signal.addEventListener("abort", finish, { once: true });
      function finish() {
        unsubscribe();
        clearTimeout(timeout);
        clearInterval(backstop);
        signal.removeEventListener("abort", finish);
        resolve(latest);
      }
    });
  }
}

/** How many requests may wait for a video at once: four times `MAX_CONCURRENCY`, at least 16. */
export function videoWaitLimit(config: Config): number {
  return Math.max(16, 4 * config.maxConcurrency);
}
