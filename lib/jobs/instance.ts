/**
 * This instance, as the others sharing its KV see it: a heartbeat record that lives `ttlMs` and is
 * written again every third of it. A lease on a job, or a quota reservation, names its instance;
 * while the instance's heartbeat lives nobody else takes it, and once it lapses (a crash) or is
 * deleted (a graceful stop) any instance may. So a job is handed over at once after a graceful
 * stop and within `ttlMs` plus one scan after a crash, and a long download never lets a lease lapse.
 * @module
 */
import { ApiError } from "../server/errors.ts";
import { type KvConnection, LazyKv } from "../kv.ts";
import { errorText, type Logger } from "../server/logger.ts";
import { randomToken } from "../values.ts";

const BEAT = (holder: string) => ["instance", holder];

/** Heartbeat and periodic scans of one instance. */
export class Instance {
  /** This instance's name in leases and reservations. */
  readonly holder: string = `inst_${randomToken(9)}`;
  readonly #kv: LazyKv;
  readonly #ttlMs: number;
  readonly #scanMs: number;
  readonly #now: () => number;
  readonly #logger: Logger;
  readonly #scans: (() => Promise<void>)[] = [];
  #timers: ReturnType<typeof setInterval>[] = [];
  #started?: Promise<void>;
  #stopped = false;

  /**
   * `ttlMs`: how long the heartbeat lives (another instance takes over within it plus
   * `scanMs`); `path`: the KV the job and quota stores use (their shared connection, or a path).
   */
  constructor(
    path: KvConnection | string | undefined,
    options: { ttlMs: number; scanMs: number; now: () => number; logger: Logger },
  ) {
    this.#kv = new LazyKv(path, (err) =>
      new ApiError(503, "The job store is unavailable.", {
        code: "job_store_unavailable",
        cause: err,
      }));
    this.#ttlMs = options.ttlMs;
    this.#scanMs = options.scanMs;
    this.#now = options.now;
    this.#logger = options.logger;
  }

  /** Runs `scan` every `scanMs` once started (and at once when started). */
  onScan(scan: () => Promise<void>): void {
    this.#scans.push(scan);
  }

  /**
   * Writes the first heartbeat, runs the scans once and keeps both going (unreferenced timers:
   * they never keep a process alive). Idempotent.
   */
  start(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return this.#started ??= (async () => {
      await this.#beat();
      const beat = setInterval(() => this.#beat(), Math.max(100, this.#ttlMs / 3));
      const scan = setInterval(() => this.#scan(), this.#scanMs);
      for (const timer of [beat, scan]) Deno.unrefTimer(timer);
      this.#timers = [beat, scan];
      await this.#scan();
    })();
  }

  async #beat(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#kv.guard((kv) =>
        kv.set(BEAT(this.holder), { until: this.#now() + this.#ttlMs }, {
          expireIn: this.#ttlMs,
        })
      );
    } catch (err) {
      this.#warn("instance heartbeat failed; tried again at the next beat", err);
    }
  }

  #scanning = false;
  async #scan(): Promise<void> {
    if (this.#scanning || this.#stopped) return;
    this.#scanning = true;
    try {
      for (const scan of this.#scans) {
        await scan().catch((err) => this.#warn("background scan failed; tried again later", err));
      }
    } finally {
      this.#scanning = false;
    }
  }

  /**
   * Whether an instance's heartbeat still lives (this one always does until it stops). `memo`
   * keeps the answers of one scan, so that each instance is read once.
   */
  alive(holder: string, memo?: Map<string, Promise<boolean>>): Promise<boolean> {
    if (holder === this.holder) return Promise.resolve(!this.#stopped);
    const known = memo?.get(holder);
    if (known) return known;
    const answer = this.#kv.guard(async (kv) => {
      const beat = (await kv.get<{ until: number }>(BEAT(holder))).value;
      return beat !== null && beat.until > this.#now();
    });
    memo?.set(holder, answer);
    return answer;
  }

  /** Stops the timers and deletes the heartbeat, so that others take this instance's work now. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const timer of this.#timers) clearInterval(timer);
    if (!this.#started) return;
    await this.#started.catch(() => {});
    await this.#kv.guard((kv) => kv.delete(BEAT(this.holder))).catch((err) =>
      this.#warn("could not withdraw the heartbeat; others take over when it lapses", err)
    );
  }

  /** Stops, and closes the KV. */
  async close(): Promise<void> {
    await this.stop();
    await this.#kv.close();
  }

  #warn(msg: string, err: unknown): void {
    this.#logger({
      level: "warn",
      msg,
      error: errorText(err),
    });
  }
}
