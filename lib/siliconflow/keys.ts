/**
 * Keys: who may call this server, and which SiliconFlow key pays for the call.
 *
 * - pass-through (neither `SILICONFLOW_API_KEY` nor `PROXY_API_KEYS`): the client's key goes on.
 * - server-key (both): clients present one of the access keys; the server's own SiliconFlow keys
 *   rotate, and the client's `Authorization` is never forwarded.
 * - anonymous (only `SILICONFLOW_API_KEY`, with `ALLOW_ANONYMOUS=true`): anyone may call, on the
 *   owner's keys.
 * @module
 */
import type { Config } from "../config.ts";
import { ApiError } from "../server/errors.ts";
import type { Logger } from "../server/logger.ts";

export type { KeyMode } from "../config.ts";

/** A short, stable, non-reversible name for a key, for logs. Never log the key itself. */
export function fingerprint(key: string): string {
  // FNV-1a, 32 bits twice with different offsets: enough to tell keys apart, useless to guess one.
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x5bd1e995) >>> 0;
  }
  return `key#${a.toString(16).padStart(8, "0")}${b.toString(16).padStart(8, "0").slice(0, 4)}`;
}

/** Compares two strings in time that depends only on their lengths, not on where they differ. */
export function timingSafeEqual(a: string, b: string): boolean {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  let diff = ea.length ^ eb.length;
  for (let i = 0; i < Math.max(ea.length, eb.length); i++) diff |= (ea[i] ?? 0) ^ (eb[i] ?? 0);
  return diff === 0;
}

/** Whether `presented` is one of `accepted`; every key is compared, in constant time. */
export function isAccepted(presented: string, accepted: readonly string[]): boolean {
  let ok = false;
  for (const key of accepted) ok = timingSafeEqual(presented, key) || ok;
  return ok;
}

interface KeyState {
  key: string;
  fp: string;
  /** Rate-limited (429) until then. */
  restingUntil: number;
  /** Rejected as a key (401, or a 403 about the key) until then. */
  setAsideUntil: number;
}

/** How long a key that SiliconFlow rejected is left out before it is tried again. */
export const KEY_COOLDOWN_MS = 10 * 60_000;

// A 403 is about the key (or its account) only when it says so; SiliconFlow's bare "Forbidden"
// is most often a model that needs the account's real-name verification, which is this request's
// problem, not the key's.
const KEY_403 =
  /invalid|expired|disabled|revoked|suspended|banned|balance|insufficient|api[ _-]?key/i;

/** Whether an upstream failure is a verdict on the key itself rather than on the request. */
export function isKeyVerdict(error: ApiError): boolean {
  return error.status === 401 || (error.status === 403 && KEY_403.test(error.message));
}

/** The server's SiliconFlow keys, in rotation. */
export class KeyPool {
  #keys: KeyState[];
  #next = 0;
  #now: () => number;
  #logger: Logger;

  /** Creates a pool; `now` is the clock, `logger` reports keys that rest or are set aside. */
  constructor(keys: readonly string[], now: () => number, logger: Logger) {
    this.#keys = keys.map((key) => ({
      key,
      fp: fingerprint(key),
      restingUntil: 0,
      setAsideUntil: 0,
    }));
    this.#now = now;
    this.#logger = logger;
  }

  /** The next usable key after round-robin, skipping `exclude`; throws when none is usable. */
  pick(exclude?: string): string {
    const now = this.#now();
    for (let i = 0; i < this.#keys.length; i++) {
      const state = this.#keys[(this.#next + i) % this.#keys.length];
      if (this.#backIn(state, now) > 0 || state.key === exclude) continue;
      this.#next = (this.#keys.indexOf(state) + 1) % this.#keys.length;
      return state.key;
    }
    const seconds = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)));
    const resting = this.#keys.filter((k) => k.setAsideUntil <= now);
    if (resting.length) {
      const wait = Math.min(...resting.map((k) => k.restingUntil)) - now;
      throw new ApiError(429, "Every SiliconFlow key of this server is rate-limited; retry later", {
        code: "rate_limit_exceeded",
        headers: { "retry-after": seconds(wait) },
      });
    }
    const wait = Math.min(...this.#keys.map((k) => this.#backIn(k, now)));
    throw new ApiError(
      503,
      "No usable SiliconFlow key is configured on this server (see its log); they are tried again after a cool-down",
      { code: "no_upstream_key", headers: { "retry-after": seconds(wait) } },
    );
  }

  /** Reacts to an upstream failure with `key`; returns true when another key may be tried. */
  failed(key: string, error: ApiError): boolean {
    const state = this.#keys.find((k) => k.key === key);
    if (!state) return false;
    if (error.status === 429) {
      const seconds = Number(error.headers["retry-after"]);
      const restMs = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 60_000;
      state.restingUntil = this.#now() + restMs;
      this.#logger({
        level: "warn",
        msg: "upstream key rate-limited; resting",
        key: state.fp,
        ms: restMs,
      });
      return true;
    }
    if (isKeyVerdict(error)) {
      state.setAsideUntil = this.#now() + KEY_COOLDOWN_MS;
      this.#logger({
        level: "error",
        msg: `upstream key rejected with ${error.status}; set aside, tried again after a cool-down`,
        key: state.fp,
        ms: KEY_COOLDOWN_MS,
      });
      return true;
    }
    return false;
  }

  /** Milliseconds until a key may be used again; 0 when it is ready. */
  #backIn(state: KeyState, now: number): number {
    return Math.max(0, state.setAsideUntil - now, state.restingUntil - now);
  }

  /** The pool's key with this fingerprint, if it still has one. */
  byFingerprint(fp: string): string | undefined {
    return this.#keys.find((k) => k.fp === fp)?.key;
  }

  /** Fingerprints of the keys, their state and the seconds until each is usable, for health reports. */
  status(): { key: string; state: "ready" | "resting" | "set aside"; back_in_s: number }[] {
    const now = this.#now();
    return this.#keys.map((k) => ({
      key: k.fp,
      state: k.setAsideUntil > now ? "set aside" : k.restingUntil > now ? "resting" : "ready",
      back_in_s: Math.ceil(this.#backIn(k, now) / 1000),
    }));
  }
}

/**
 * Runs `call` with a pool key; after a 429, or a 401 or 403 about the key, it is tried once more
 * on the next key. Any other failure is this request's alone.
 */
export async function withPoolKey<T>(pool: KeyPool, call: (key: string) => Promise<T>): Promise<T> {
  const first = pool.pick();
  try {
    return await call(first);
  } catch (err) {
    if (!(err instanceof ApiError) || !pool.failed(first, err)) throw err;
    let second: string;
    try {
      second = pool.pick(first);
    } catch {
      throw err;
    }
    try {
      return await call(second);
    } catch (err2) {
      if (err2 instanceof ApiError) pool.failed(second, err2);
      throw err2;
    }
  }
}

/** Which key pays for a request's upstream calls. */
export type UpstreamAuth = { kind: "client"; key: string } | { kind: "pool" };

/**
 * The key in `Authorization: Bearer <key>`, or undefined. A key sent without the scheme
 * (`Authorization: sk-…`, as some scripts and clients do) is taken as it is.
 */
export function bearerKey(headers: Headers): string | undefined {
  const value = (headers.get("authorization") ?? "").trim();
  const bearer = /^Bearer\s+(\S+)$/i.exec(value);
  if (bearer) return bearer[1];
  return /^[\w.~+/=-]{8,}$/.test(value) && !/^bearer$/i.test(value) ? value : undefined;
}

/** Checks the client's key according to the key mode; 401 when it is missing or wrong. */
export function authorize(
  headers: Headers,
  config: Pick<Config, "keyMode" | "proxyKeys" | "demo">,
): UpstreamAuth {
  const presented = bearerKey(headers);
  switch (config.keyMode) {
    case "anonymous":
      return { kind: "pool" };
    case "server-key":
      if (presented && isAccepted(presented, config.proxyKeys)) return { kind: "pool" };
      throw new ApiError(
        401,
        presented
          ? "Invalid API key: use an access key given out by this server's owner."
          : "Missing API key. Send the access key you were given as 'Authorization: Bearer <key>'.",
        { code: presented ? "invalid_api_key" : "missing_api_key" },
      );
    case "pass-through":
      if (presented) return { kind: "client", key: presented };
      if (config.demo) return { kind: "client", key: "demo" };
      throw new ApiError(
        401,
        "Missing API key. Send your SiliconFlow key as 'Authorization: Bearer <key>'.",
        { code: "missing_api_key" },
      );
  }
}
