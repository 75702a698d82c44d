/**
 * Video jobs, kept going: each instance polls the jobs it holds the lease on, a few seconds apart
 * and backing off (`VIDEO_POLL_MS`, doubling up to 6×), and picks up, every few polls' time,
 * jobs marked for polling whose lease has lapsed (a restart, an instance gone). A job that succeeds is copied
 * into the media store before SiliconFlow's 10-minute link lapses; one that nobody collects is
 * given up at `VIDEO_JOB_TIMEOUT_MS`. A job paid by the client's own key is polled only while this
 * process has that key in memory (it is never stored): after a restart it resumes when its owner
 * next asks for it.
 * @module
 */
import type { Config } from "../config.ts";
import { deadline } from "../server/deadline.ts";
import { ApiError } from "../server/errors.ts";
import type { Logger } from "../server/logger.ts";
import { randomToken } from "../server/values.ts";
import type { VideoStatus } from "../siliconflow/client.ts";
import type { UpstreamAuth } from "../siliconflow/keys.ts";
import type { Upstream } from "../siliconflow/upstream.ts";
import type { QuotaStore } from "../quota/store.ts";
import type { ImageStore } from "../store/image_store.ts";
import { isDone, type VideoJob, type VideoJobStore } from "../store/video_jobs.ts";

/** How long SiliconFlow's video links work. */
export const LINK_LIFE_MS = 10 * 60_000;
/** The largest video copied into the store. */
export const MAX_VIDEO_BYTES = 512 * 1024 * 1024;
/**
 * A lease on polling a job: twenty first waits (the longest wait is six), renewed when half of it
 * is left, so every other poll or so, well before it lapses; another instance takes a job over
 * within twenty waits of its holder going away.
 */
function leaseMs(config: Config): number {
  return Math.max(2_000, 20 * config.videoPollMs);
}

/** Status checks in flight at once, per instance. */
const POLLS_AT_ONCE = 8;

interface Scheduled {
  at: number;
  delay: number;
  leaseUntil: number;
  errors: number;
  /** The job as last read or written. */
  job?: VideoJob;
}

/** What the poller needs of the server. */
export interface PollerDeps {
  config: Config;
  jobs: VideoJobStore;
  upstream: Upstream;
  store?: ImageStore;
  quota?: QuotaStore;
  logger: Logger;
  now: () => number;
  shutdownSignal: AbortSignal;
}

/** The poller of one instance. */
export class VideoPoller {
  readonly #deps: PollerDeps;
  readonly #holder = `poller_${randomToken(9)}`;
  readonly #due = new Map<string, Scheduled>();
  /** Client keys of pass-through jobs, in memory only. */
  readonly #clientKeys = new Map<string, string>();
  #timer?: ReturnType<typeof setInterval>;
  #busy = false;
  #lastScan = -Infinity;

  constructor(deps: PollerDeps) {
    this.#deps = deps;
    deps.shutdownSignal.addEventListener("abort", () => this.stop(), { once: true });
  }

  /** Starts the loop (once): a tick a second, unreferenced, so it never keeps a process alive. */
  start(): void {
    if (this.#timer || this.#deps.shutdownSignal.aborted) return;
    const tick = Math.min(1_000, this.#deps.config.videoPollMs);
    this.#timer = setInterval(() => this.#tick(), tick);
    Deno.unrefTimer(this.#timer);
  }

  /** Stops the loop. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The lease a new job is made with: this instance polls it first. */
  lease(): { holder: string; ms: number } {
    return { holder: this.#holder, ms: leaseMs(this.#deps.config) };
  }

  /**
   * Polls a job from now on; `key` is the client's own SiliconFlow key when it pays, `leased`
   * says the job was made with this instance's {@link lease}.
   */
  watch(id: string, key?: string, soon = this.#deps.config.videoPollMs, leased = false): void {
    if (key) this.#clientKeys.set(id, key);
    if (!this.#due.has(id)) {
      const { now, config } = this.#deps;
      const leaseUntil = leased ? now() + leaseMs(config) : 0;
      this.#due.set(id, { at: now() + soon, delay: config.videoPollMs, leaseUntil, errors: 0 });
    }
    this.start();
  }

  /** Forgets a job (deleted). */
  forget(id: string): void {
    this.#due.delete(id);
    this.#clientKeys.delete(id);
  }

  async #tick(): Promise<void> {
    if (this.#busy || this.#deps.shutdownSignal.aborted) return;
    this.#busy = true;
    try {
      const now = this.#deps.now();
      const { videoPollMs } = this.#deps.config;
      // Orphans (a restart, an instance gone) are looked for every few polls' time.
      if (now - this.#lastScan >= videoPollMs * 3) {
        this.#lastScan = now;
        for (const id of await this.#deps.jobs.pending().catch(() => [])) {
          this.watch(id, undefined, 0);
        }
      }
      const ready = [...this.#due].filter(([, s]) => s.at <= now);
      // A few at a time, so that the checks reuse a few upstream connections instead of opening
      // one each when many jobs fall due together.
      const next = () => ready.pop();
      await Promise.all(Array.from({ length: POLLS_AT_ONCE }, async () => {
        for (let item = next(); item; item = next()) {
          const [id, s] = item;
          await this.#poll(id, s).catch((err) => this.#failedPoll(id, s, err));
        }
      }));
    } finally {
      this.#busy = false;
    }
  }

  #failedPoll(id: string, s: Scheduled, err: unknown): void {
    s.errors++;
    s.at = this.#deps.now() + Math.min(s.delay * 2 ** s.errors, 6 * this.#deps.config.videoPollMs);
    this.#deps.logger({
      level: "warn",
      msg: "video job status check failed; tried again later",
      job: id,
      error: err instanceof Error ? err.message.slice(0, 200) : String(err),
    });
  }

  /** One status check of a job, when this instance holds (or takes) its lease. */
  async #poll(id: string, s: Scheduled): Promise<void> {
    const { jobs, now, config } = this.#deps;
    const lease = leaseMs(config);
    const renew = s.leaseUntil - now() < lease / 2;
    // The record is read again when the lease is renewed (every few polls), not at every poll.
    const job = renew || !s.job ? await jobs.get(id) : s.job;
    if (!job || isDone(job)) return this.forget(id);
    const key = this.#clientKeys.get(id);
    if (job.clientKey && !key) return void this.#due.delete(id); // resumes when the owner asks
    if (now() > job.deadline) {
      const minutes = Math.round(config.videoJobTimeoutMs / 60_000);
      const message = `The video was not ready within ${minutes} minutes; polling stopped.`;
      await this.#finish(job, { status: "failed", error: { code: "video_timeout", message } });
      return this.forget(id);
    }
    if (renew) {
      if (!(await jobs.lease(id, this.#holder, lease))) return void this.#due.delete(id);
      s.leaseUntil = now() + lease;
    }
    s.job = job;
    const auth: UpstreamAuth = key ? { kind: "client", key } : { kind: "pool" };
    const calls = this.#deps.upstream.videos({
      auth,
      signal: this.#deps.shutdownSignal,
      origin: () => job.origin,
    });
    let state: VideoStatus;
    try {
      state = await calls.status(job.requestId, job.keyRef);
    } catch (err) {
      // SiliconFlow refusing the status itself (an unknown job) five times over ends the job.
      if (err instanceof ApiError && err.status === 400 && s.errors >= 4) {
        await this.#finish(job, {
          status: "failed",
          error: { code: "video_failed", message: err.message },
        });
        return this.forget(id);
      }
      throw err;
    }
    s.errors = 0;
    if (state.status === "Succeed") {
      await this.#finish(job, await this.#collect(job, state.url!));
      return this.forget(id);
    }
    if (state.status === "Failed") {
      const message = `SiliconFlow could not make the video: ${state.reason ?? "no reason given"}`;
      await this.#finish(job, { status: "failed", error: { code: "video_failed", message } });
      return this.forget(id);
    }
    // Written only when the state changes: progress is worked out when the job is read.
    const change = stateChange(job, state, now());
    if (change) {
      s.job = await jobs.update(id, (j) => (isDone(j) ? undefined : { ...j, ...change }));
    }
    s.delay = Math.min(s.delay * 2, 6 * config.videoPollMs);
    // A little jitter spreads jobs made together over time.
    s.at = now() + s.delay * (0.9 + Math.random() * 0.2);
  }

  /** The finished job's fields: the copy in the store, or SiliconFlow's link when the store fails. */
  async #collect(job: VideoJob, url: string): Promise<Partial<VideoJob>> {
    const done: Partial<VideoJob> = {
      status: "completed",
      progress: 100,
      url,
      urlExpires: this.#deps.now() + LINK_LIFE_MS,
    };
    const store = this.#deps.store;
    if (!store) return done;
    const limit = deadline(
      Math.min(LINK_LIFE_MS, this.#deps.config.upstreamTimeoutMs),
      this.#deps.shutdownSignal,
    );
    try {
      done.stored = await this.#deps.upstream.downloadInto(
        url,
        limit.signal,
        (video, _type, signal) =>
          video instanceof Uint8Array
            ? store.put(video, "video/mp4", signal)
            : store.putStream
            ? store.putStream(video, "video/mp4", signal)
            : new Response(video).bytes().then((bytes) => store.put(bytes, "video/mp4", signal)),
        MAX_VIDEO_BYTES,
      );
    } catch (err) {
      this.#deps.logger({
        level: "warn",
        msg: "video store failed; the job keeps SiliconFlow's 10-minute link",
        job: job.id,
        error: err instanceof Error ? err.message.slice(0, 200) : String(err),
      });
    } finally {
      limit.clear();
    }
    return done;
  }

  /** Writes a job's end, and settles its video against the key's quota and usage. */
  async #finish(job: VideoJob, end: Partial<VideoJob>): Promise<void> {
    const { jobs, quota, now } = this.#deps;
    // Whether this write ended the job (the last attempt of the update is the one committed), so
    // that a job another instance ended first is not counted twice.
    let ended = false;
    await jobs.update(job.id, (j) => {
      ended = !isDone(j);
      return ended ? { ...j, ...end, finished: now() } : undefined;
    });
    if (!ended || !job.account || !quota) return;
    const made = end.status === "completed" ? 1 : 0;
    if (!made) await quota.giveBack(job.account, "videos", 1, job.created).catch(() => {});
    await quota.record(job.account, job.model, { requested: 0, made, failures: 1 - made }).catch(
      () => {},
    );
  }
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
