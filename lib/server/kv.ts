/**
 * Deno KV's one local failure mode: two processes committing to one SQLite file at once get
 * "database is locked". Every store on KV (keys and quotas, video jobs) retries it here.
 * @module
 */

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
