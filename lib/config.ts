/**
 * Configuration from environment variables (and, for the compiled binary, command-line flags
 * that mirror them) to a typed, frozen object. A bad value stops start-up with a message that
 * names the variable.
 * @module
 */
import { findModel } from "./models.ts";

/** Where a model alias points: the model for text-only requests, and optionally one for edits. */
export interface AliasTarget {
  /** Used when the request has no input images. */
  generate: string;
  /** Used when the request has input images; defaults to `generate`. */
  edit?: string;
}

/** The server's configuration. */
export interface Config {
  /** `PORT`: TCP port to listen on. */
  readonly port: number;
  /** `HOST`: interface to bind. */
  readonly host: string;
  /** `SILICONFLOW_BASE_URL`: upstream API base, without a trailing slash. */
  readonly baseUrl: string;
  /** `UPSTREAM_TIMEOUT_MS`: the longest one upstream call may take. */
  readonly upstreamTimeoutMs: number;
  /** `KEEPALIVE_MS`: interval of keep-alive chunks in streamed answers. */
  readonly keepAliveMs: number;
  /** `MAX_BODY_BYTES`: the largest request body accepted. */
  readonly maxBodyBytes: number;
  /** `LOG_FORMAT`: `text` or `json`. */
  readonly logFormat: "text" | "json";
  /** `DEMO`: serve from the built-in stand-in instead of SiliconFlow. */
  readonly demo: boolean;
  /** `MODEL_ALIASES` merged over the built-in aliases. */
  readonly modelAliases: Readonly<Record<string, AliasTarget>>;
  /** `IMAGE_DELIVERY`: chat images as SiliconFlow's links (`url`) or embedded (`data`). */
  readonly imageDelivery: "url" | "data";
  /** `PROGRESS`: `reasoning` sends status lines in streamed answers; `off` by default. */
  readonly progress: "off" | "reasoning";
}

/** Every environment variable the server reads (the `--allow-env` list). */
export const ENV_NAMES: readonly string[] = [
  "PORT",
  "HOST",
  "SILICONFLOW_BASE_URL",
  "UPSTREAM_TIMEOUT_MS",
  "KEEPALIVE_MS",
  "MAX_BODY_BYTES",
  "LOG_FORMAT",
  "DEMO",
  "MODEL_ALIASES",
  "IMAGE_DELIVERY",
  "PROGRESS",
];

/** Default values, as documented in the README's configuration table. */
export const DEFAULTS = {
  port: 8000,
  host: "0.0.0.0",
  baseUrl: "https://api.siliconflow.cn/v1",
  upstreamTimeoutMs: 180_000,
  keepAliveMs: 10_000,
  maxBodyBytes: 32 * 1024 * 1024,
} as const;

/** OpenAI model names that tools hard-code, mapped to SiliconFlow models. */
export const DEFAULT_ALIASES: Readonly<Record<string, AliasTarget>> = {
  "dall-e-2": { generate: "Kwai-Kolors/Kolors" },
  "dall-e-3": { generate: "Qwen/Qwen-Image" },
  "gpt-image-1": { generate: "Qwen/Qwen-Image", edit: "Qwen/Qwen-Image-Edit-2509" },
};

/** A configuration value that cannot be used. */
export class ConfigError extends Error {
  /** Creates an error naming the variable at fault. */
  constructor(name: string, message: string) {
    super(`${name}: ${message}`);
    this.name = "ConfigError";
  }
}

function integer(
  name: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
) {
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return n;
}

function oneOf<T extends string>(name: string, raw: string | undefined, values: readonly T[]): T {
  const v = (raw ?? "").trim().toLowerCase() || values[0];
  if (!values.includes(v as T)) {
    throw new ConfigError(name, `must be one of ${values.join(", ")}, got "${raw}"`);
  }
  return v as T;
}

function boolean(name: string, raw: string | undefined): boolean {
  const v = (raw ?? "").trim().toLowerCase();
  if (["", "0", "false", "no", "off"].includes(v)) return false;
  if (["1", "true", "yes", "on"].includes(v)) return true;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

/** Parses `alias=Model,alias2=Model|EditModel`. Targets must be known models. */
export function parseAliases(raw: string | undefined): Record<string, AliasTarget> {
  const out: Record<string, AliasTarget> = {};
  for (const entry of (raw ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^([^=\s]+)\s*=\s*([^|\s]+)(?:\s*\|\s*([^|\s]+))?$/.exec(entry);
    if (!m) {
      throw new ConfigError(
        "MODEL_ALIASES",
        `"${entry}" is not alias=Model or alias=Model|EditModel`,
      );
    }
    const [, alias, generate, edit] = m;
    for (const id of [generate, edit]) {
      if (id !== undefined && !findModel(id)) {
        throw new ConfigError("MODEL_ALIASES", `"${id}" (for ${alias}) is not a known model`);
      }
    }
    out[alias.toLowerCase()] = {
      generate: findModel(generate)!.id,
      edit: edit && findModel(edit)!.id,
    };
  }
  return out;
}

/** Reads the configuration; `get` returns a variable's value (from the environment or a flag). */
export function loadConfig(get: (name: string) => string | undefined): Config {
  const baseUrl = (get("SILICONFLOW_BASE_URL") ?? "").trim() || DEFAULTS.baseUrl;
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new ConfigError("SILICONFLOW_BASE_URL", `is not a URL: "${baseUrl}"`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new ConfigError("SILICONFLOW_BASE_URL", `must be http(s), got "${baseUrl}"`);
  }
  const host = (get("HOST") ?? "").trim() || DEFAULTS.host;
  if (!/^[\w.:[\]-]+$/.test(host)) throw new ConfigError("HOST", `is not a host name: "${host}"`);
  return Object.freeze({
    port: integer("PORT", get("PORT"), DEFAULTS.port, 0, 65535),
    host,
    baseUrl: baseUrl.replace(/\/+$/, ""),
    upstreamTimeoutMs: integer(
      "UPSTREAM_TIMEOUT_MS",
      get("UPSTREAM_TIMEOUT_MS"),
      DEFAULTS.upstreamTimeoutMs,
      1,
      3_600_000,
    ),
    keepAliveMs: integer("KEEPALIVE_MS", get("KEEPALIVE_MS"), DEFAULTS.keepAliveMs, 1, 600_000),
    maxBodyBytes: integer(
      "MAX_BODY_BYTES",
      get("MAX_BODY_BYTES"),
      DEFAULTS.maxBodyBytes,
      1024,
      1024 * 1024 * 1024,
    ),
    logFormat: oneOf("LOG_FORMAT", get("LOG_FORMAT"), ["text", "json"] as const),
    imageDelivery: oneOf("IMAGE_DELIVERY", get("IMAGE_DELIVERY"), ["url", "data"] as const),
    progress: oneOf("PROGRESS", get("PROGRESS"), ["off", "reasoning"] as const),
    demo: boolean("DEMO", get("DEMO")),
    modelAliases: Object.freeze({ ...DEFAULT_ALIASES, ...parseAliases(get("MODEL_ALIASES")) }),
  });
}
