/**
 * The records of the quota store (keys, usage rows, reservations) and the small pieces it is made
 * of: UTC days and months, hashing, ids, the "database is locked" retry, and its errors.
 * @module
 */
import { ApiError } from "../server/errors.ts";

export { retryLocked } from "../kv.ts";

/** A key as the admin API shows it (never the secret). */
export interface KeyRecord {
  /** `key_…`. */
  id: string;
  /** Who it is for. */
  name: string;
  /** SHA-256 of the secret, hex. */
  hash: string;
  /** ISO date-time. */
  created_at: string;
  /** ISO date-time of the last request, or null. */
  last_used_at: string | null;
  /** Images a UTC day, or null for no limit. */
  images_per_day: number | null;
  /** Images a UTC month, or null for no limit. */
  images_per_month: number | null;
  /** Videos a UTC day, or null (or absent, on a key made before videos) for no limit. */
  videos_per_day?: number | null;
  /** Videos a UTC month, or null for no limit. */
  videos_per_month?: number | null;
  /** Model ids or aliases it may use, or null for any. */
  models: string[] | null;
  /** ISO date-time after which it no longer works, or null. */
  expires_at: string | null;
  /** Turned off by the admin. */
  disabled: boolean;
  /** Prompts are extended unless a request says `prompt_extend: false` (absent: off). */
  prompt_extend?: boolean;
}

/** The fields an admin may set. */
export type KeyFields = Partial<
  Pick<
    KeyRecord,
    | "name"
    | "images_per_day"
    | "images_per_month"
    | "videos_per_day"
    | "videos_per_month"
    | "models"
    | "expires_at"
    | "disabled"
    | "prompt_extend"
  >
>;

/** One row of usage: a key, a model and a UTC day. */
export interface UsageRow {
  /** `YYYY-MM-DD`. */
  date: string;
  /** The key's id. */
  key_id: string;
  /** The model. */
  model: string;
  /** Images asked for. */
  requested: number;
  /** Images made. */
  made: number;
  /** Images that failed. */
  failures: number;
}

/** `YYYY-MM-DD` and `YYYY-MM` in UTC. */
export function utcDay(ms: number): { day: string; month: string } {
  const iso = new Date(ms).toISOString();
  return { day: iso.slice(0, 10), month: iso.slice(0, 7) };
}

export async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function unavailable(err: unknown): ApiError {
  return new ApiError(503, "The key store is unavailable; keys it manages cannot be checked now.", {
    code: "key_store_unavailable",
    headers: { "retry-after": "5" },
    cause: err,
  });
}

/** A reservation of images against a key's quotas; give back what was not made. */
export interface Reservation {
  /**
   * Its record on KV while its request runs (a job that takes it over deletes it in the write
   * that keeps the job); undefined when the store keeps none.
   */
  key?: Deno.KvKey;
  /** Settles it, giving back `unmade` of the reserved count (0: all were made). */
  release(unmade: number): Promise<void>;
}

export function nextDay(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
}

export function nextMonth(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

export function exceeded(
  kind: string,
  limit: number,
  used: number,
  resetsAt: number,
  now: number,
  unit = "images",
): ApiError {
  const seconds = Math.max(1, Math.ceil((resetsAt - now) / 1000));
  return new ApiError(
    429,
    `This key's ${kind} limit of ${limit} ${unit} is reached (${used} used); it resets at ${
      new Date(resetsAt).toISOString()
    }.`,
    {
      code: "quota_exceeded",
      type: "insufficient_quota",
      headers: { "retry-after": String(seconds) },
    },
  );
}
