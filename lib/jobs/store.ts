/**
 * Jobs on Deno KV, of any kind (a video today): the embedded default is a local SQLite file
 * (`KV_PATH`, the one the managed keys use), the platform's KV on Deno Deploy or a KV Connect
 * server, so a job outlives a restart and every instance sharing the KV answers for it. Per job:
 * its record, an index by owner (newest first), a mark while it still needs work, and a lease
 * naming the instance that works on it. Every entry expires: a running job's at its deadline plus
 * the retention, an ended one's `retentionMs` after it ended (the media store's own retention).
 * @module
 */
import type { ApiError } from "../server/errors.ts";
import { type KvConnection, LazyKv } from "../kv.ts";

/** A job's state, as OpenAI's objects say it. */
export type JobState = "queued" | "in_progress" | "completed" | "failed";

/** What every kind of job records. */
export interface JobRecord {
  /** `{kind}_…`: unguessable. */
  id: string;
  /** Who may see it: a digest of the caller's key, a managed key's id, or `anonymous`. */
  owner: string;
  /** The managed key (`key_…`) whose quota it counts against, if one. */
  account?: string;
  /** Where it stands. */
  status: JobState;
  /** When it was made, ms since the epoch. */
  created: number;
  /** When it ended (done or failed). */
  finished?: number;
  /** When it is given up as failed, whoever holds it, ms. */
  deadline: number;
  /** True when the client's own key pays: checking on it needs that key, which is never stored. */
  clientKey: boolean;
  /** Why it failed. */
  error?: { code: string; message: string };
  /** Work left (a copy into the store to try again), and when it is due, ms: the job stays marked. */
  followUp?: number;
}

/** A job still marked for work, as a scan sees it without reading its record. */
export interface PendingMark {
  /** The job. */
  id: string;
  /** Its deadline. */
  deadline: number;
  /** Whether the client's own key pays for it. */
  clientKey: boolean;
}

/** A page of an owner's jobs. */
export interface JobPage<J> {
  /** The jobs, in the order asked. */
  jobs: J[];
  /** Whether more follow. */
  hasMore: boolean;
}

/** Whether a job has ended (done or failed). */
export function isDone(job: JobRecord): boolean {
  return job.status === "completed" || job.status === "failed";
}

/** Whether a job still needs an instance to work on it. */
export function needsWork(job: JobRecord): boolean {
  return !isDone(job) || job.followUp !== undefined;
}

/** Deno KV's most keys read in one `getMany`. */
const READ_BATCH = 10;
/** How long a mark and a lease outlive a job's deadline, so that a scan can still end it. */
const MARK_GRACE_MS = 86_400_000;

/** The jobs of one kind in one Deno KV. */
export class JobStore<J extends JobRecord> {
  readonly #kv: LazyKv;
  readonly #now: () => number;
  readonly #retentionMs: number;
  readonly #keys: {
    job: (id: string) => Deno.KvKey;
    owner: (job: J) => Deno.KvKey;
    mark: (id: string) => Deno.KvKey;
    lease: (id: string) => Deno.KvKey;
    ownerPrefix: (owner: string) => Deno.KvKey;
    marks: Deno.KvKey;
  };

  /**
   * `kind` names its keys (`video` keeps the keys video jobs always had); `path` is a connection
   * shared with the other stores, or a file, `:memory:`, a KV Connect URL, or undefined for the
   * platform's KV.
   */
  constructor(
    kind: string,
    path: KvConnection | string | undefined,
    options: { now: () => number; retentionMs: number; unavailable: (err: unknown) => ApiError },
  ) {
    this.#kv = new LazyKv(path, options.unavailable);
    this.#now = options.now;
    this.#retentionMs = options.retentionMs;
    this.#keys = {
      job: (id) => [kind, id],
      owner: (job) => [`${kind}_owner`, job.owner, job.created, job.id],
      mark: (id) => [`${kind}_pending`, id],
      lease: (id) => [`${kind}_lease`, id],
      ownerPrefix: (owner) => [`${kind}_owner`, owner],
      marks: [`${kind}_pending`],
    };
  }

  #lastCreated = 0;

  /**
   * The creation time of a new job: now, or a millisecond after the last one this store gave, so
   * that the jobs made in this process list in the order they were made (the owner index sorts
   * by it, then by the random id).
   */
  newCreated(): number {
    return this.#lastCreated = Math.max(this.#now(), this.#lastCreated + 1);
  }

  /** How long from now a record should live: to its deadline and then the retention. */
  #life(job: J): number {
    const end = isDone(job) ? (job.finished ?? this.#now()) : Math.max(job.deadline, this.#now());
    return Math.max(60_000, end + this.#retentionMs - this.#now());
  }

  /** How long from now a mark or lease of a job with this deadline should live. */
  #markLife(deadline: number): number {
    return Math.max(60_000, deadline + MARK_GRACE_MS - this.#now());
  }

  /**
   * Keeps a new job, marked for work, with its lease taken by `holder`; `settles` is a key
   * deleted in the same write (the quota reservation the job now accounts for). Throws the
   * store's 503 when the write fails.
   */
  async create(job: J, holder: string, settles?: Deno.KvKey): Promise<void> {
    const k = this.#keys;
    const ok = await this.#kv.guard(async (kv) => {
      const life = { expireIn: this.#life(job) };
      const mark = { expireIn: this.#markLife(job.deadline) };
      const op = kv.atomic().check({ key: k.job(job.id), versionstamp: null })
        .set(k.job(job.id), job, life).set(k.owner(job), job.id, life)
        .set(k.mark(job.id), { deadline: job.deadline, clientKey: job.clientKey }, mark)
        .set(k.lease(job.id), { holder }, mark);
      if (settles) op.delete(settles);
      return (await op.commit()).ok;
    });
    if (!ok) throw new Error(`a job with id ${job.id} exists already`);
  }

  /** A job, or undefined. */
  get(id: string): Promise<J | undefined> {
    return this.#kv.guard(async (kv) => (await kv.get<J>(this.#keys.job(id))).value ?? undefined);
  }

  /** A job and the holder of its lease, read together. */
  getHeld(id: string): Promise<{ job?: J; holder?: string }> {
    return this.#kv.guard(async (kv) => {
      const [job, lease] = await kv.getMany<[J, { holder: string }]>([
        this.#keys.job(id),
        this.#keys.lease(id),
      ]);
      return { job: job.value ?? undefined, holder: lease.value?.holder };
    });
  }

  /**
   * Changes a job atomically (`change` answers the new record, or undefined to leave it). A job
   * that no longer needs work loses its mark and lease; one that ends is kept for the retention.
   * Answers the record as it now is, and whether this call's write is the one that ended it.
   */
  update(id: string, change: (job: J) => J | undefined): Promise<{ job?: J; ended: boolean }> {
    const k = this.#keys;
    return this.#kv.guard(async (kv) => {
      for (;;) {
        const entry = await kv.get<J>(k.job(id));
        if (!entry.value) return { ended: false };
        const next = change(entry.value);
        if (!next) return { job: entry.value, ended: false };
        const ended = !isDone(entry.value) && isDone(next);
        const life = { expireIn: this.#life(next) };
        const op = kv.atomic().check(entry).set(k.job(id), next, life);
        // The owner index lives as long as the record it points at.
        if (ended) op.set(k.owner(next), id, life);
        if (!needsWork(next)) op.delete(k.mark(id)).delete(k.lease(id));
        if ((await op.commit()).ok) return { job: next, ended };
      }
    });
  }

  /** An owner's jobs, newest first (or oldest, `order: "asc"`), after the job `after`. */
  list(
    owner: string,
    options: { after?: string; limit: number; order: "asc" | "desc" },
  ): Promise<JobPage<J>> {
    const k = this.#keys;
    return this.#kv.guard(async (kv) => {
      const prefix = k.ownerPrefix(owner);
      const selector: Deno.KvListSelector = { prefix };
      if (options.after) {
        const after = (await kv.get<J>(k.job(options.after))).value;
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
      const jobs: J[] = [];
      const wanted = ids.slice(0, options.limit);
      // Deno KV reads at most ten keys at once.
      for (let i = 0; i < wanted.length; i += READ_BATCH) {
        const found = await kv.getMany<J[]>(wanted.slice(i, i + READ_BATCH).map(k.job));
        for (const entry of found) if (entry.value) jobs.push(entry.value);
      }
      return { jobs, hasMore: ids.length > options.limit };
    });
  }

  /** Deletes a job and its marks; false when there was none. */
  delete(id: string): Promise<boolean> {
    const k = this.#keys;
    return this.#kv.guard(async (kv) => {
      for (;;) {
        const entry = await kv.get<J>(k.job(id));
        if (!entry.value) return false;
        const op = kv.atomic().check(entry).delete(k.job(id)).delete(k.owner(entry.value))
          .delete(k.mark(id)).delete(k.lease(id));
        if ((await op.commit()).ok) return true;
      }
    });
  }

  /** Drops the mark and lease of a job whose record is gone (deleted, or expired). */
  dropMarks(id: string): Promise<void> {
    const k = this.#keys;
    return this.#kv.guard(async (kv) => {
      const job = await kv.get<J>(k.job(id));
      if (job.value) return;
      await kv.atomic().check(job).delete(k.mark(id)).delete(k.lease(id)).commit();
    });
  }

  /** Every job still marked for work, with its deadline (read from the mark, not the record). */
  pending(): Promise<PendingMark[]> {
    return this.#kv.guard(async (kv) => {
      const marks: PendingMark[] = [];
      const iter = kv.list<number | { deadline: number; clientKey: boolean }>({
        prefix: this.#keys.marks,
      });
      for await (const { key, value } of iter) {
        // Marks written before 0.2 hold the deadline alone.
        const mark = typeof value === "number" ? { deadline: value, clientKey: false } : value;
        marks.push({ id: key[1] as string, ...mark });
      }
      return marks;
    });
  }

  /**
   * Takes the lease on working on a job for `holder`: true when it has it now (it was free, its
   * own, or its holder is no longer alive), false while another live instance holds it.
   */
  claim(id: string, holder: string, alive: (holder: string) => Promise<boolean>): Promise<boolean> {
    const key = this.#keys.lease(id);
    return this.#kv.guard(async (kv) => {
      const entry = await kv.get<{ holder: string }>(key);
      const current = entry.value?.holder;
      if (current === holder) return true;
      if (current && await alive(current)) return false;
      const deadline = (await kv.get<J>(this.#keys.job(id))).value?.deadline ?? this.#now();
      const expireIn = this.#markLife(deadline);
      return (await kv.atomic().check(entry).set(key, { holder }, { expireIn }).commit()).ok;
    });
  }

  /** Gives up `holder`'s lease on a job (a graceful stop), so that the next scan anywhere takes it. */
  release(id: string, holder: string): Promise<void> {
    const key = this.#keys.lease(id);
    return this.#kv.guard(async (kv) => {
      const entry = await kv.get<{ holder: string }>(key);
      if (entry.value?.holder === holder) await kv.atomic().check(entry).delete(key).commit();
    });
  }

  /** Closes the KV. */
  close(): Promise<void> {
    return this.#kv.close();
  }
}
