/**
 * Keeps jobs of one kind going: each instance works on the jobs it holds the lease on, and its
 * scans (see {@link Instance}) take over jobs whose instance is gone, end jobs past their deadline
 * whoever holds them, and pick up client-paid jobs only while their key is in memory. Status checks
 * and follow-ups (a video's copy into the store) run as separate tracked tasks, each with its own
 * limit, so one slow download never holds up the others. Whoever waits for a job in this process
 * hears each change as it is written.
 * @module
 */
import { errorText, type Logger } from "../server/logger.ts";
import type { Instance } from "./instance.ts";
import { isDone, type JobRecord, type JobStore, needsWork } from "./store.ts";

/** What one kind of job does; the poller does the rest. */
export interface JobKind<J extends JobRecord> {
  /** Its records. */
  readonly store: JobStore<J>;
  /**
   * One status check of a running job: what changed (undefined: nothing). `key` is the client's
   * own key when it pays; `failures` counts the checks that failed in a row before this one.
   */
  check(
    job: J,
    key: string | undefined,
    signal: AbortSignal,
    failures: number,
  ): Promise<Partial<J> | undefined>;
  /** The follow-up due at `job.followUp`: what changed, with the next `followUp` or none. */
  followUp(job: J, signal: AbortSignal): Promise<Partial<J>>;
  /** Undoes a follow-up whose change lost to another instance's (deletes its stored copy). */
  discard(change: Partial<J>): Promise<void>;
  /** What a job past its deadline becomes. */
  expired(job: J): Partial<J>;
  /** Settles a job this instance's write ended (quota, usage). Never rejects. */
  settle(job: J): Promise<void>;
}

/** How often the poller checks, and how many tasks it runs at once. */
export interface PollerTiming {
  /** The first wait between status checks; doubles up to `maxPollMs`. */
  pollMs: number;
  /** The longest wait between status checks. */
  maxPollMs: number;
  /** Status checks in flight at once. */
  checksAtOnce: number;
  /** Follow-ups (downloads) in flight at once. */
  followUpsAtOnce: number;
}

interface Held {
  at: number;
  delay: number;
  failures: number;
  running: boolean;
  /** The job's follow-up is due: it runs under the follow-up limit. */
  followUp: boolean;
}

/** The poller of one kind of job in one instance. */
export class JobPoller<J extends JobRecord> {
  readonly #kind: JobKind<J>;
  readonly #instance: Instance;
  readonly #timing: PollerTiming;
  readonly #now: () => number;
  readonly #logger: Logger;
  readonly #stop = new AbortController();
  readonly #signal: AbortSignal;
  readonly #held = new Map<string, Held>();
  /** Client keys of pass-through jobs, in memory only. */
  readonly #keys = new Map<string, string>();
  readonly #listeners = new Map<string, Set<(job: J) => void>>();
  readonly #tasks = new Set<Promise<void>>();
  /** Jobs whose work runs in this instance (see {@link runHere}). */
  readonly #here = new Map<string, Promise<void>>();
  #running = { checks: 0, followUps: 0 };
  #timer?: ReturnType<typeof setInterval>;

  constructor(deps: {
    kind: JobKind<J>;
    instance: Instance;
    timing: PollerTiming;
    now: () => number;
    logger: Logger;
    shutdownSignal: AbortSignal;
  }) {
    this.#kind = deps.kind;
    this.#instance = deps.instance;
    this.#timing = deps.timing;
    this.#now = deps.now;
    this.#logger = deps.logger;
    this.#signal = AbortSignal.any([this.#stop.signal, deps.shutdownSignal]);
    this.#signal.addEventListener("abort", () => clearInterval(this.#timer), { once: true });
    deps.instance.onScan(() => this.#scan());
  }

  /** This instance's name in leases. */
  get holder(): string {
    return this.#instance.holder;
  }

  /** Starts the ticks and the instance's heartbeat and scans (once). */
  start(): void {
    if (this.#timer || this.#signal.aborted) return;
    this.#timer = setInterval(() => this.#tick(), Math.min(1_000, this.#timing.pollMs));
    Deno.unrefTimer(this.#timer);
    this.#instance.start().catch(() => {});
  }

  /**
   * Stops working and hands the jobs over: running checks and downloads are cut short, and once
   * they ended, the leases are given up, so the next scan of any instance takes them at once.
   */
  async stop(): Promise<void> {
    this.#stop.abort();
    clearInterval(this.#timer);
    await Promise.allSettled([...this.#tasks]);
    const held = [...this.#held.keys()];
    this.#held.clear();
    await Promise.allSettled(held.map((id) => this.#kind.store.release(id, this.holder)));
  }

  /**
   * Runs a job's work in this instance, for a job only the instance that runs it can follow (an
   * image task: SiliconFlow's image call is one long request). No scan here takes the job while
   * it runs; its lease lives with this instance's heartbeat; {@link drain} waits for it.
   */
  runHere(id: string, work: () => Promise<void>): void {
    this.start();
    const running = work()
      .catch((err) =>
        this.#logger({ level: "error", msg: "job failed", job: id, error: errorText(err) })
      )
      .finally(() => this.#here.delete(id));
    this.#here.set(id, running);
  }

  /** Waits for the work run in this instance to end (a graceful stop, within its grace). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#here.values()]);
  }

  /** Works on a job this instance holds the lease on; `key` is the client's own when it pays. */
  hold(id: string, key?: string, soonMs = this.#timing.pollMs): void {
    if (key) this.#keys.set(id, key);
    if (!this.#held.has(id)) {
      const at = this.#now() + soonMs;
      this.#held.set(id, {
        at,
        delay: this.#timing.pollMs,
        failures: 0,
        running: false,
        followUp: false,
      });
    }
    this.start();
  }

  /** The owner of a client-paid job asked with its key: work on it again, if nobody else does. */
  async resume(id: string, key: string): Promise<void> {
    this.#keys.set(id, key);
    if (this.#held.has(id)) return;
    if (await this.#kind.store.claim(id, this.holder, (h) => this.#instance.alive(h))) {
      this.hold(id, key, 0);
    }
  }

  /** Forgets a job (deleted, or ended). */
  forget(id: string): void {
    this.#held.delete(id);
    this.#keys.delete(id);
  }

  /** Calls `listener` with each change of a job written in this process, until unsubscribed. */
  subscribe(id: string, listener: (job: J) => void): () => void {
    let set = this.#listeners.get(id);
    if (!set) this.#listeners.set(id, set = new Set());
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.#listeners.get(id) === set) this.#listeners.delete(id);
    };
  }

  /**
   * Writes a change of a job (when `when` still holds for the stored record), tells whoever
   * listens, and settles the job if this write ended it. Answers the job as it now is.
   */
  async write(
    id: string,
    change: Partial<J>,
    when: (job: J) => boolean = (job) => !isDone(job),
  ): Promise<{ job?: J; applied: boolean }> {
    let applied = false;
    const { job, ended } = await this.#kind.store.update(id, (current) => {
      applied = when(current);
      if (!applied) return undefined;
      const next = { ...current, ...change };
      if (isDone(next) && !isDone(current)) next.finished = this.#now();
      return next;
    });
    if (job && applied) { for (const listener of this.#listeners.get(id) ?? []) listener(job); }
    if (job && ended) await this.#kind.settle(job);
    return { job, applied };
  }

  /**
   * Ends a job past its deadline (whoever holds it), with no work left (a pending follow-up is
   * dropped with it); answers the job as it now is.
   */
  async endIfLate(job: J): Promise<J> {
    if (isDone(job) || this.#now() <= job.deadline) return job;
    // A pending follow-up is dropped, unless the kind has one for the end (its webhook).
    const ended = { followUp: undefined, ...this.#kind.expired(job) } as Partial<J>;
    return (await this.write(job.id, ended)).job ?? job;
  }

  async #scan(): Promise<void> {
    const memo = new Map<string, Promise<boolean>>();
    const now = this.#now();
    for (const mark of await this.#kind.store.pending()) {
      if (this.#signal.aborted) return;
      if (this.#held.has(mark.id) || this.#here.has(mark.id)) continue;
      if (now > mark.deadline) {
        const job = await this.#kind.store.get(mark.id);
        if (!job) await this.#kind.store.dropMarks(mark.id); // a mark left by a deleted job
        if (!job || !needsWork(await this.endIfLate(job))) continue;
      }
      // A client-paid job waits for its owner's key; its deadline still ends it (above).
      if (mark.clientKey && !this.#keys.has(mark.id)) continue;
      const alive = (holder: string) => this.#instance.alive(holder, memo);
      if (await this.#kind.store.claim(mark.id, this.holder, alive)) {
        this.hold(mark.id, undefined, 0);
      }
    }
  }

  #tick(): void {
    const now = this.#now();
    for (const [id, held] of this.#held) {
      if (held.running || held.at > now || this.#signal.aborted) continue;
      const kind = held.followUp ? "followUps" : "checks";
      const limit = held.followUp ? this.#timing.followUpsAtOnce : this.#timing.checksAtOnce;
      if (this.#running[kind] >= limit) continue;
      held.running = true;
      this.#running[kind]++;
      const task = this.#work(id, held)
        .catch((err) => this.#failed(id, held, err))
        .finally(() => {
          held.running = false;
          this.#running[kind]--;
          this.#tasks.delete(task);
          // A freed place goes to the next job due (or the follow-up this check just found) now,
          // not a tick later: with many jobs due, checks run 8 at a time, back to back.
          this.#tick();
        });
      this.#tasks.add(task);
    }
  }

  /** One turn of a held job: a status check, or its follow-up, as the record says. */
  async #work(id: string, held: Held): Promise<void> {
    const { job: read, holder } = await this.#kind.store.getHeld(id);
    // Gone, ended, or taken over by another instance (this one's heartbeat lapsed meanwhile).
    if (!read || !needsWork(read) || (holder !== undefined && holder !== this.holder)) {
      if (!read) await this.#kind.store.dropMarks(id);
      return this.forget(id);
    }
    const job = await this.endIfLate(read);
    if (!needsWork(job)) return this.forget(id);
    const now = this.#now();
    if (job.followUp !== undefined) {
      held.at = job.followUp;
      if (job.followUp > now) return;
      if (!held.followUp) return void (held.followUp = true); // runs under the follow-up limit
      const change = await this.#kind.followUp(job, this.#signal);
      const { applied } = await this.write(id, change, (j) => j.followUp !== undefined);
      if (!applied) await this.#kind.discard(change);
      held.followUp = false;
      held.at = change.followUp ?? now;
      return change.followUp === undefined ? this.forget(id) : undefined;
    }
    const key = this.#keys.get(id);
    if (job.clientKey && !key) return this.forget(id); // resumes when the owner asks
    const change = await this.#kind.check(job, key, this.#signal, held.failures);
    held.failures = 0;
    if (change) {
      const written = (await this.write(id, change)).job;
      if (written && !needsWork(written)) return this.forget(id);
      if (written?.followUp !== undefined) {
        held.followUp = true;
        held.at = written.followUp;
        return;
      }
    }
    held.delay = Math.min(held.delay * 2, this.#timing.maxPollMs);
    // A little jitter spreads jobs made together over time.
    held.at = this.#now() + held.delay * (0.9 + Math.random() * 0.2);
  }

  #failed(id: string, held: Held, err: unknown): void {
    if (this.#signal.aborted) return;
    held.failures++;
    held.at = this.#now() + Math.min(held.delay * 2 ** held.failures, this.#timing.maxPollMs);
    this.#logger({
      level: "warn",
      msg: "job check failed; tried again later",
      job: id,
      error: errorText(err),
    });
  }
}
