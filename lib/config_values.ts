/**
 * Reading one configuration value: whole numbers in a range, one of a few words, booleans,
 * comma-separated lists, and URLs as they may be printed. A bad value is a {@link ConfigError}
 * that names the variable.
 * @module
 */
import { choiceOr } from "./values.ts";

/**
 * A configuration value that cannot be used; its message names the variable.
 *
 * @example Catch it
 * ```ts
 * import { ConfigError, loadConfig } from "../mod.ts";
 *
 * try {
 *   loadConfig((name) => ({ PORT: "eighty" })[name]);
 * } catch (err) {
 *   console.assert(err instanceof ConfigError && err.message.startsWith("PORT:"));
 * }
 * ```
 */
export class ConfigError extends Error {
  /** Creates an error naming the variable at fault. */
  constructor(name: string, message: string) {
    super(`${name}: ${message}`);
    this.name = "ConfigError";
  }
}

/** A whole number from `min` to `max`; `fallback` when unset. */
export function integer(
  name: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return n;
}

export function oneOf<T extends string>(
  name: string,
  raw: string | undefined,
  values: readonly T[],
): T {
  const found = choiceOr(raw?.trim(), Object.fromEntries(values.map((v) => [v, v])), values[0]);
  if (found === undefined) {
    throw new ConfigError(name, `must be one of ${values.join(", ")}, got "${raw}"`);
  }
  return found;
}

export function boolean(name: string, raw: string | undefined): boolean {
  const v = (raw ?? "").trim().toLowerCase();
  if (["", "0", "false", "no", "off"].includes(v)) return false;
  if (["1", "true", "yes", "on"].includes(v)) return true;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

/** A comma-separated list, trimmed, without empty entries. */
export function keyList(raw: string | undefined): string[] {
  return (raw ?? "").split(",").map((k) => k.trim()).filter(Boolean);
}

/** A URL as it may be printed: without the user name and password it may carry. */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.username = "";
    parsed.password = "";
    return parsed.href.replace(/\/$/, "");
  } catch {
    return "(not a URL)";
  }
}

/** An http(s) URL setting (`SILICONFLOW_BASE_URL` and others), checked, without a trailing slash. */
export function baseUrlOf(raw: string | undefined, name: string, fallback = ""): string {
  const baseUrl = (raw ?? "").trim() || fallback;
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new ConfigError(name, "is not a URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new ConfigError(name, `must be http(s), got "${displayUrl(baseUrl)}"`);
  }
  return baseUrl.replace(/\/+$/, "");
}

/** Reads a whole-number variable: its name, default and range. */
export type IntegerReader = (name: string, fallback: number, min: number, max: number) => number;

/** Every environment variable the server reads (the `--allow-env` list). */
export const ENV_NAMES: readonly string[] = [
  "PORT",
  "HOST",
  "SILICONFLOW_BASE_URL",
  "UPSTREAM_TIMEOUT_MS",
  "KEEPALIVE_MS",
  "MAX_BODY_BYTES",
  "MAX_BODY_BUFFER_BYTES",
  "LOG_FORMAT",
  "LOG_LEVEL",
  "DEMO",
  "MODEL_ALIASES",
  "IMAGE_DELIVERY",
  "PROGRESS",
  "SILICONFLOW_API_KEY",
  "PROXY_API_KEYS",
  "ALLOW_ANONYMOUS",
  "MAX_CONCURRENCY",
  "BODY_TIMEOUT_MS",
  "SHUTDOWN_GRACE_MS",
  "STRICT_PARAMS",
  "STREAM_HOLD_MS",
  "PLAYGROUND",
  "ADMIN_API_KEY",
  "KV_PATH",
  "IMAGE_STORE",
  "IMAGE_TTL_DAYS",
  "IMAGE_STORE_MAX_BYTES",
  "PUBLIC_BASE_URL",
  "TRUST_PROXY",
  "S3_ENDPOINT",
  "S3_REGION",
  "S3_ACCESS_KEY_ID",
  "S3_SECRET_ACCESS_KEY",
  "S3_FORCE_PATH_STYLE",
  "VIDEO_POLL_MS",
  "VIDEO_JOB_TIMEOUT_MS",
  "IMAGE_TASK_TTL_MS",
  "WEBHOOK_SECRET",
  "WEBHOOK_ALLOW_PRIVATE",
  "PROMPT_REWRITE_MODEL",
  "MCP_ALLOWED_HOSTS",
];
