/**
 * Video jobs on Deno KV: the embedded default is a local SQLite file (`KV_PATH`, the one the
 * managed keys use), the platform's KV on Deno Deploy, so a job outlives a restart and every
 * instance sharing the KV answers for it. Per job: its record, an index by owner (newest first),
 * a mark while it still needs polling, and a lease, so that one instance at a time polls it.
 * @module
 */
import { ApiError } from "../server/errors.ts";
import { LazyKv } from "../server/kv.ts";

/** A job's state, as OpenAI's video object says it. */
export type VideoState = "queued" | "in_progress" | "completed" | "failed";

/** One video job. */
export interface VideoJob {
  /** `video_…`. */
  id: string;
  /** Who may see it: a digest of the caller's key, or a managed key's id. */
  owner: string;
  /** The managed key (`key_…`) whose video quota it counts against, if one. */
  account?: string;
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
  /** Where it stands. */
  status: VideoState;
  /** 0–100. */
  progress: number;
  /** Its place in SiliconFlow's queue, while queued. */
  position?: number;
  /** When it was made, ms since the epoch. */
  created: number;
  /** When SiliconFlow started on it. */
  started?: number;
  /** How long such a job is expected to take once started, ms (for progress). */
  expectedMs?: number;
  /** When it finished (done or failed). */
  finished?: number;
  /** Why it failed. */
  error?: { code: string; message: string };
  /** SiliconFlow's `requestId`. */
  requestId: string;
  /** Which of the server's keys submitted it (its fingerprint). */
  keyRef?: string;
  /** True when the client's own key pays: polling needs that key, which is never stored. */
  clientKey: boolean;
  /** The origin the job was made on (the demo's links point there). */
  origin: string;
  /** The copy in the media store (`{id}.mp4`), once made. */
  stored?: string;
  /** SiliconFlow's link, and when it lapses. */
  url?: string;
  /** When `url` stops working, ms. */
  urlExpires?: number;
  /** When polling gives up (nobody will collect it), ms. */
  deadline: number;
}

/** A page of a key's jobs. */
export interface VideoPage {
  /** The jobs, in the order asked. */
  jobs: VideoJob[];
  /** Whether more follow. */
  hasMore: boolean;
}

function unavailable(err: unknown): ApiError {
  return new ApiError(503, "The job store is unavailable; video jobs cannot be read now.", {
    code: "job_store_unavailable",
    headers: { "retry-after": "5" },
    cause: err,
  });
}

/** Whether a job has ended (done or failed): it is no longer polled. */
export function isDone(job: VideoJob): boolean {
  return job.status === "completed" || job.status === "failed";
}

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

const JOB = (id: string) => ["video", id];
const BY_OWNER = (job: VideoJob) => ["video_owner", job.owner, job.created, job.id];
const PENDING = (id: string) => ["video_pending", id];
const LEASE = (id: string) => ["video_lease", id];

/** Video jobs in one Deno KV. */
export class VideoJobStore {
  #kv: LazyKv;
  #now: () => number;

  /** `path`: a file, `:memory:`, a KV Connect URL, or undefined for the platform's KV. */
  constructor(path: string | undefined, now: () => number) {
    this.#kv = new LazyKv(path, unavailable);
    this.#now = now;
  }

  /** Keeps a new job, marked for polling, with the lease on it taken by `lease.holder`. */
  async create(job: VideoJob, lease: { holder: string; ms: number }): Promise<void> {
    const until = this.#now() + lease.ms;
    await this.#kv.guard((kv) =>
      kv.atomic().check({ key: JOB(job.id), versionstamp: null }).set(JOB(job.id), job)
        .set(BY_OWNER(job), job.id).set(PENDING(job.id), job.deadline)
        .set(LEASE(job.id), { holder: lease.holder, until }, { expireIn: lease.ms * 2 }).commit()
    );
  }

  /** A job, or undefined. */
  get(id: string): Promise<VideoJob | undefined> {
    return this.#kv.guard(async (kv) => (await kv.get<VideoJob>(JOB(id))).value ?? undefined);
  }

  /**
   * Changes a job atomically (`change` answers the new record, or undefined to leave it); a job
   * that is done or failed is no longer marked for polling. Answers the record as it now is.
   */
  update(
    id: string,
    change: (job: VideoJob) => VideoJob | undefined,
  ): Promise<VideoJob | undefined> {
    return this.#kv.guard(async (kv) => {
      for (;;) {
        const entry = await kv.get<VideoJob>(JOB(id));
        if (!entry.value) return undefined;
        const next = change(entry.value);
        if (!next) return entry.value;
        const op = kv.atomic().check(entry).set(JOB(id), next);
        if (isDone(next)) op.delete(PENDING(id));
        if ((await op.commit()).ok) return next;
      }
    });
  }

  /** An owner's jobs, newest first (or oldest, `order: "asc"`), after the job `after`. */
  list(
    owner: string,
    options: { after?: string; limit: number; order: "asc" | "desc" },
  ): Promise<VideoPage> {
    return this.#kv.guard(async (kv) => {
      const prefix = ["video_owner", owner];
      const selector: Deno.KvListSelector = { prefix };
      if (options.after) {
        const after = (await kv.get<VideoJob>(JOB(options.after))).value;
        if (after && after.owner === owner) {
          const at = [...prefix, after.created, after.id];
          Object.assign(
            selector,
            options.order === "desc" ? { prefix, end: at } : { prefix, start: [...at, ""] },
          );
        }
      }
      const ids: string[] = [];
      const iter = kv.list<string>(selector, {
        reverse: options.order === "desc",
        limit: options.limit + 1,
      });
      for await (const entry of iter) ids.push(entry.value);
      const found = await kv.getMany<VideoJob[]>(ids.slice(0, options.limit).map(JOB));
      const jobs = found.map((e) => e.value).filter((j): j is VideoJob => j !== null);
      return { jobs, hasMore: ids.length > options.limit };
    });
  }

  /** Deletes a job and its marks; false when there was none. */
  delete(id: string): Promise<boolean> {
    return this.#kv.guard(async (kv) => {
      const entry = await kv.get<VideoJob>(JOB(id));
      if (!entry.value) return false;
      await kv.atomic().delete(JOB(id)).delete(BY_OWNER(entry.value)).delete(PENDING(id))
        .delete(LEASE(id)).commit();
      return true;
    });
  }

  /** The ids of every job still marked for polling. */
  pending(): Promise<string[]> {
    return this.#kv.guard(async (kv) => {
      const ids: string[] = [];
      for await (const entry of kv.list({ prefix: ["video_pending"] })) {
        ids.push(entry.key[1] as string);
      }
      return ids;
    });
  }

  /**
   * Takes or renews the lease on polling a job for `ms`: true when `holder` has it now (it was
   * free, lapsed, or its own), false when another holder's lease still runs.
   */
  lease(id: string, holder: string, ms: number): Promise<boolean> {
    return this.#kv.guard(async (kv) => {
      const entry = await kv.get<{ holder: string; until: number }>(LEASE(id));
      const now = this.#now();
      if (entry.value && entry.value.holder !== holder && entry.value.until > now) return false;
      const value = { holder, until: now + ms };
      return (await kv.atomic().check(entry).set(LEASE(id), value, { expireIn: ms * 2 }).commit())
        .ok;
    });
  }

  /** Closes the KV. */
  close(): Promise<void> {
    return this.#kv.close();
  }
}
