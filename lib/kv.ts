/**
 * Deno KV as the stores on it (keys and quotas, video jobs) use it: opened on first use, and
 * SQLite's one local failure mode, "database is locked" (two processes committing to one file at
 * once), retried.
 * @module
 */
import { ApiError } from "./server/errors.ts";

/** Runs `op`, retrying SQLite's "database is locked" with a jittered backoff. */
export async function retryLocked<T>(op: () => Promise<T>, attempts = 12): Promise<T> {
  for (let i = 0;; i++) {
    try {
      return await op();
    } catch (err) {
      if (i + 1 >= attempts || !String((err as Error)?.message).includes("database is locked")) {
        throw err;
      }
      await new Promise((r) => setTimeout(r, (5 + Math.random() * 20) * (i + 1)));
    }
  }
}

/** Whether Deno KV refused a call for its arguments (rather than failing to reach the store). */
function refused(err: unknown): boolean {
  return err instanceof TypeError && /too (many|large)/i.test(err.message);
}

/**
 * One Deno KV, opened on first use and shared by the stores on it (the job store, the quota
 * store, the instance's heartbeat): one connection a process, so that they never wait on each
 * other's SQLite lock, and one database even for `:memory:`. A failed open is tried again next time.
 */
export class KvConnection {
  #path: string | undefined;
  #kv?: Promise<Deno.Kv>;

  /** `path`: a file, `:memory:`, a KV Connect URL, or undefined for the platform's KV. */
  constructor(path: string | undefined) {
    this.#path = path;
  }

  /** The KV, opened now if need be. */
  async open(): Promise<Deno.Kv> {
    try {
      return await (this.#kv ??= Deno.openKv(this.#path));
    } catch (err) {
      this.#kv = undefined;
      throw err;
    }
  }

  /** Closes the KV, if it was opened. */
  async close(): Promise<void> {
    const kv = this.#kv;
    this.#kv = undefined;
    if (kv) (await kv.catch(() => undefined))?.close();
  }
}

/** A store's view of a KV: a failure to open it (or of an operation) is the store's own 503. */
export class LazyKv {
  #connection: KvConnection;
  #owned: boolean;
  #unavailable: (err: unknown) => ApiError;

  /**
   * `source`: a connection shared with other stores, or a path (a file, `:memory:`, a KV Connect
   * URL, or undefined for the platform's KV) for a connection of its own.
   */
  constructor(
    source: KvConnection | string | undefined,
    unavailable: (err: unknown) => ApiError,
  ) {
    this.#owned = !(source instanceof KvConnection);
    this.#connection = source instanceof KvConnection ? source : new KvConnection(source);
    this.#unavailable = unavailable;
  }

  /** Runs `op` on the KV (opened now if need be, tried again next time if that fails). */
  async guard<T>(op: (kv: Deno.Kv) => Promise<T>): Promise<T> {
    let kv: Deno.Kv;
    try {
      kv = await this.#connection.open();
    } catch (err) {
      throw this.#unavailable(err);
    }
    try {
      return await retryLocked(() => op(kv));
    } catch (err) {
      // A call the store refuses for its arguments ("Too many ranges (max 10)", "Value too
      // large") is a bug of this server, answered and logged as one, not an outage.
      throw err instanceof ApiError || refused(err) ? err : this.#unavailable(err);
    }
  }

  /** Closes the KV, if it is this store's own (a shared one is closed by whoever made it). */
  async close(): Promise<void> {
    if (this.#owned) await this.#connection.close();
  }
}
