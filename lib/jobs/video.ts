/**
 * The video kind of job: SiliconFlow's Wan jobs, checked with the key that submitted them, and
 * once done, copied into the media store before SiliconFlow's 10-minute link lapses (streamed,
 * never held whole; a failed copy is tried again while the link still works, and the job is
 * answered with SiliconFlow's link meanwhile). A video reserved on a managed key is given back
 * when its job fails.
 * @module
 */
import type { Config } from "../config.ts";
import { ApiError } from "../server/errors.ts";
import { errorText, type Logger } from "../server/logger.ts";
import type { VideoStatus } from "../siliconflow/client.ts";
import type { Upstream } from "../siliconflow/upstream.ts";
import type { QuotaStore } from "../quota/store.ts";
import type { MediaStore } from "../store/media_store.ts";
import type { JobKind } from "./poller.ts";
import type { JobRecord, JobStore } from "./store.ts";
import { type Callback, webhookDue, type Webhooks } from "./webhook.ts";

/** One video job. */
export interface VideoJob extends JobRecord {
  /** The SiliconFlow model. */
  model: string;
  /** The model as the client named it. */
  requested: string;
  /** The prompt. */
  prompt: string;
  /** The `image_size` sent. */
  size: string;
  /** The video's length in seconds, as the model makes it. */
  seconds: string;
  /** 0–100. */
  progress: number;
  /** Its place in SiliconFlow's queue, while queued. */
  position?: number;
  /** When SiliconFlow started on it. */
  started?: number;
  /** How long such a job is expected to take once started, ms (for progress). */
  expectedMs?: number;
  /** SiliconFlow's `requestId`; empty until SiliconFlow accepted the job. */
  requestId: string;
  /** Which of the server's keys submitted it (its fingerprint). */
  keyRef?: string;
  /** The origin the job was made on (the demo's links point there). */
  origin: string;
  /** The copy in the media store (`{id}.mp4`), once made. */
  stored?: string;
  /** SiliconFlow's link, and when it lapses. */
  url?: string;
  /** When `url` stops working, ms. */
  urlExpires?: number;
  /** Failed copies into the store so far. */
  copyFailures?: number;
  /** The webhook to send when it ends (`callback_url`). */
  callback?: Callback;
}

/** How long SiliconFlow's video links work. */
export const LINK_LIFE_MS = 10 * 60_000;
/** The largest video copied into the store. */
export const MAX_VIDEO_BYTES = 512 * 1024 * 1024;
/** A copy is not started with less of the link's life left than this. */
const COPY_MARGIN_MS = 30_000;

/**
 * A job's progress at `now`, 0–100: SiliconFlow reports none, so a running job's is estimated
 * from its time in progress against how long such a job takes, up to 95 until it is done.
 */
export function progressAt(job: VideoJob, now: number): number {
  if (job.status === "completed") return 100;
  if (job.status !== "in_progress" || job.started === undefined) return job.progress;
  const share = (now - job.started) / (job.expectedMs ?? 180_000);
  return Math.max(job.progress, Math.min(95, Math.floor(share * 100)));
}

/** What a status of a running job changes in its record, or undefined when nothing changed. */
export function stateChange(
  job: VideoJob,
  state: VideoStatus,
  now: number,
): Partial<VideoJob> | undefined {
  if (state.status === "InQueue") {
    const position = state.position;
    return job.status === "queued" && job.position === position
      ? undefined
      : { status: "queued", position };
  }
  return job.status === "in_progress"
    ? undefined
    : { status: "in_progress", position: undefined, started: now };
}

/** What the video kind needs of the server. */
export interface VideoKindDeps {
  config: Config;
  jobs: JobStore<VideoJob>;
  upstream: Upstream;
  store?: MediaStore;
  quota?: QuotaStore;
  logger: Logger;
  now: () => number;
  /** Sends `callback_url` webhooks. */
  webhooks?: Webhooks;
  /** A job as the Videos API shows it, with its links on `base` (the webhook's `data`). */
  describe?: (job: VideoJob, base: string) => Promise<unknown>;
}

/** How video jobs are checked, collected and settled. */
export class VideoKind implements JobKind<VideoJob> {
  readonly #deps: VideoKindDeps;

  constructor(deps: VideoKindDeps) {
    this.#deps = deps;
  }

  get store(): JobStore<VideoJob> {
    return this.#deps.jobs;
  }

  async check(
    job: VideoJob,
    key: string | undefined,
    signal: AbortSignal,
    failures: number,
  ): Promise<Partial<VideoJob> | undefined> {
    const { now, upstream, config } = this.#deps;
    if (!job.requestId) {
      // Written before the submit: still being submitted, or its instance stopped before
      // SiliconFlow took it (nothing was charged then).
      if (now() - job.created < 2 * config.upstreamTimeoutMs) return undefined;
      const message = "The server stopped before SiliconFlow accepted this video; try again.";
      return {
        status: "failed",
        error: { code: "video_not_submitted", message },
        ...webhookDue(job, this.#deps.now()),
      };
    }
    const calls = upstream.videos({
      auth: key ? { kind: "client", key } : { kind: "pool" },
      signal,
      origin: () => job.origin,
    });
    let state: VideoStatus;
    try {
      state = await calls.status(job.requestId, job.keyRef);
    } catch (err) {
      // SiliconFlow refusing the status itself (an unknown job) five times over ends the job.
      if (err instanceof ApiError && err.status === 400 && failures >= 4) {
        const error = { code: "video_failed", message: err.message };
        return { status: "failed", error, ...webhookDue(job, this.#deps.now()) };
      }
      throw err;
    }
    if (state.status === "Succeed") {
      // Collected by the follow-up, under its own limit; the job ends once it is copied.
      const running = job.status === "in_progress"
        ? {}
        : { status: "in_progress" as const, position: undefined, started: now() };
      return { ...running, url: state.url, urlExpires: now() + LINK_LIFE_MS, followUp: now() };
    }
    if (state.status === "Failed") {
      const message = `SiliconFlow could not make the video: ${state.reason ?? "no reason given"}`;
      return {
        status: "failed",
        error: { code: "video_failed", message },
        ...webhookDue(job, this.#deps.now()),
      };
    }
    // Written only when the state changes: progress is worked out when the job is read.
    return stateChange(job, state, now());
  }

  /**
   * A finished video's work: its copy into the store (tried again while the link works), then,
   * once no copy is left to try, its webhook (tried again as {@link Webhooks.send} says).
   */
  async followUp(job: VideoJob, signal: AbortSignal): Promise<Partial<VideoJob>> {
    // A completed job may still have its copy to try again (answered meanwhile with the link).
    let change: Partial<VideoJob> = job.status === "failed" ? {} : await this.#copy(job, signal);
    if (change.followUp !== undefined) return change; // a copy to try again first
    const ended = { ...job, ...change };
    const { webhooks, describe } = this.#deps;
    if (!webhooks || !describe || !webhooks.due(ended)) return { ...change, followUp: undefined };
    const data = await describe(ended, ended.callback.base);
    change = { ...change, ...await webhooks.send(ended, `video.${ended.status}`, data, signal) };
    return { followUp: undefined, ...change };
  }

  /** Copies the video into the store, which ends the job; a failed copy is tried again later. */
  async #copy(job: VideoJob, signal: AbortSignal): Promise<Partial<VideoJob>> {
    const { store, now, upstream, config } = this.#deps;
    const done: Partial<VideoJob> = { status: "completed", progress: 100, followUp: undefined };
    const left = (job.urlExpires ?? 0) - now();
    if (!store || !job.url || job.stored || left < COPY_MARGIN_MS) return done;
    const limit = AbortSignal.any([
      signal,
      AbortSignal.timeout(Math.min(left, config.upstreamTimeoutMs)),
    ]);
    try {
      const stored = await upstream.downloadInto(
        job.url,
        limit,
        (video, _type, until) =>
          video instanceof Uint8Array
            ? store.put(video, "video/mp4", until)
            : store.putStream(video, "video/mp4", until),
        MAX_VIDEO_BYTES,
      );
      return { ...done, stored };
    } catch (err) {
      if (signal.aborted) throw err; // stopping: the next holder collects it
      const failures = (job.copyFailures ?? 0) + 1;
      const retryAt = now() + Math.min(5_000 * 2 ** (failures - 1), 120_000);
      const again = retryAt < (job.urlExpires ?? 0) - COPY_MARGIN_MS;
      this.#deps.logger({
        level: "warn",
        msg: again
          ? "video store failed; tried again while SiliconFlow's link works"
          : "video store failed; the job keeps SiliconFlow's 10-minute link",
        job: job.id,
        error: errorText(err),
      });
      return { ...done, copyFailures: failures, followUp: again ? retryAt : undefined };
    }
  }

  async discard(change: Partial<VideoJob>): Promise<void> {
    if (change.stored) await this.#deps.store?.delete(change.stored).catch(() => {});
  }

  expired(job: VideoJob): Partial<VideoJob> {
    const minutes = Math.round(this.#deps.config.videoJobTimeoutMs / 60_000);
    const message = `The video was not ready within ${minutes} minutes; polling stopped.`;
    return {
      status: "failed",
      error: { code: "video_timeout", message },
      ...webhookDue(job, this.#deps.now()),
    };
  }

  /** Counts an ended job against its managed key: a failed one's video is given back. */
  async settle(job: VideoJob): Promise<void> {
    const { quota, logger } = this.#deps;
    if (!job.account || !quota) return;
    const made = job.status === "completed" ? 1 : 0;
    const warn = (what: string) => (err: unknown) =>
      logger({
        level: "warn",
        msg: what,
        key_id: job.account,
        job: job.id,
        error: errorText(err),
      });
    if (!made) {
      await quota.giveBack(job.account, "videos", 1, job.created).catch(
        warn("could not give back a failed video's quota"),
      );
    }
    await quota.record(job.account, job.model, { requested: 0, made, failures: 1 - made })
      .catch(warn("could not record a video's usage"));
  }
}
