/**
 * Configuration from environment variables (and, for the compiled binary, command-line flags
 * that mirror them) to a typed, frozen object. A bad value stops start-up with a message that
 * names the variable.
 * @module
 */
import { type AliasTarget, findModel } from "./generation/registry.ts";
import {
  baseUrlOf,
  boolean,
  ConfigError,
  integer,
  type IntegerReader,
  keyList,
  oneOf,
} from "./config_values.ts";
import { type ImageStoreConfig, storeOf } from "./store/config.ts";

export { ENV_NAMES } from "./config_values.ts";

export { ConfigError, displayUrl } from "./config_values.ts";
export type { ImageStoreConfig } from "./store/config.ts";

export type { AliasTarget } from "./generation/registry.ts";

/** How keys are handled: see `siliconflow/keys.ts`. */
export type KeyMode = "pass-through" | "server-key" | "anonymous";

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
  /** `MAX_BODY_BUFFER_BYTES`: the most bytes of request bodies held at once, across requests. */
  readonly maxBodyBufferBytes: number;
  /** `LOG_FORMAT`: `text` or `json`. */
  readonly logFormat: "text" | "json";
  /** `LOG_LEVEL`: `info` writes a line per request; `warn` and `error` only what went wrong. */
  readonly logLevel: "info" | "warn" | "error";
  /** `DEMO`: serve from the built-in stand-in instead of SiliconFlow. */
  readonly demo: boolean;
  /** `MODEL_ALIASES` merged over the built-in aliases. */
  readonly modelAliases: Readonly<Record<string, AliasTarget>>;
  /**
   * `IMAGE_DELIVERY`: images as SiliconFlow's links (`url`), embedded in chat (`data`), or re-hosted
   * in the image store (`store`, the default when there is one).
   */
  readonly imageDelivery: "url" | "data" | "store";
  /** `IMAGE_STORE` and its settings; undefined for none. */
  readonly imageStore?: ImageStoreConfig;
  /** `PUBLIC_BASE_URL`: where this server's `/images/…` links point; else the request's origin. */
  readonly publicBaseUrl?: string;
  /** `TRUST_PROXY`: take the origin from `X-Forwarded-Host`/`-Proto` (a front sets them). */
  readonly trustProxy: boolean;
  /** `WEBHOOK_SECRET`: signs the webhooks of `callback_url`; without it they are not sent. */
  readonly webhookSecret?: string;
  /** `WEBHOOK_ALLOW_PRIVATE`: webhooks may go to loopback and private addresses. */
  readonly webhookAllowPrivate: boolean;
  /** `PROMPT_REWRITE_MODEL`: the SiliconFlow chat model that extends prompts when asked; none: off. */
  readonly promptRewriteModel?: string;
  /** `MCP_ALLOWED_HOSTS`: host names (`*` for any) `/mcp` answers besides loopback ones. */
  readonly mcpAllowedHosts: readonly string[];
  /** `PROGRESS`: `reasoning` sends status lines in streamed answers; `off` by default. */
  readonly progress: "off" | "reasoning";
  /** `SILICONFLOW_API_KEY`: the server's own SiliconFlow keys (comma-separated). */
  readonly siliconflowKeys: readonly string[];
  /** `PROXY_API_KEYS`: the access keys clients must present (comma-separated). */
  readonly proxyKeys: readonly string[];
  /** How keys are handled, derived from the two above and `ALLOW_ANONYMOUS`. */
  readonly keyMode: KeyMode;
  /** `MAX_CONCURRENCY`: upstream generations in flight per instance; past it, 429. */
  readonly maxConcurrency: number;
  /** `BODY_TIMEOUT_MS`: the longest a request body may take to arrive. */
  readonly bodyTimeoutMs: number;
  /** `SHUTDOWN_GRACE_MS`: on SIGINT/SIGTERM, how long in-flight generations may finish. */
  readonly shutdownGraceMs: number;
  /** `STRICT_PARAMS`: a known field the chosen model does not take is a 400, not dropped. */
  readonly strictParams: boolean;
  /** `STREAM_HOLD_MS`: how long a stream's headers wait for an early failure (≤ `KEEPALIVE_MS`). */
  readonly streamHoldMs: number;
  /** `PLAYGROUND`: serve the playground page at `/`. */
  readonly playground: boolean;
  /** `ADMIN_API_KEY`: enables the admin API and access keys managed on KV (server-key mode). */
  readonly adminApiKey?: string;
  /** `KV_PATH`: the KV for managed keys; undefined means the platform's (Deno Deploy). */
  readonly kvPath?: string;
  /** `VIDEO_POLL_MS`: the first wait between status checks of a video job (backs off to 6×). */
  readonly videoPollMs: number;
  /** `VIDEO_JOB_TIMEOUT_MS`: how long a video job is polled before it is given up as failed. */
  readonly videoJobTimeoutMs: number;
  /** `IMAGE_TASK_TTL_MS`: how long an async image task can be collected after it was submitted. */
  readonly imageTaskTtlMs: number;
}

/** Default values, as documented in the README's configuration table. */
export const DEFAULTS = {
  port: 8000,
  host: "0.0.0.0",
  baseUrl: "https://api.siliconflow.cn/v1",
  upstreamTimeoutMs: 180_000,
  keepAliveMs: 10_000,
  maxBodyBytes: 32 * 1024 * 1024,
  maxBodyBufferBytes: 256 * 1024 * 1024,
  maxConcurrency: 64,
  bodyTimeoutMs: 30_000,
  shutdownGraceMs: 30_000,
  streamHoldMs: 1_000,
  imageStore: "./data/images",
  kvPath: "./data/kv.sqlite3",
  imageTtlDays: 30,
  imageStoreMaxBytes: 10 * 1024 * 1024 * 1024,
  videoPollMs: 5_000,
  videoJobTimeoutMs: 3_600_000,
  imageTaskTtlMs: 86_400_000,
} as const;

const GPT_IMAGE_TARGET: AliasTarget = {
  generate: "Qwen/Qwen-Image",
  edit: "Qwen/Qwen-Image-Edit-2509",
};

/** OpenAI model names that tools hard-code, mapped to SiliconFlow models. */
export const DEFAULT_ALIASES: Readonly<Record<string, AliasTarget>> = {
  "dall-e-2": { generate: "Kwai-Kolors/Kolors" },
  "dall-e-3": { generate: "Qwen/Qwen-Image" },
  "gpt-image-1": { generate: "Qwen/Qwen-Image", edit: "Qwen/Qwen-Image-Edit-2509" },
  "gpt-image-1.5": { generate: "Qwen/Qwen-Image", edit: "Qwen/Qwen-Image-Edit-2509" },
  "gpt-image-1-mini": { generate: "Qwen/Qwen-Image", edit: "Qwen/Qwen-Image-Edit-2509" },
  "gpt-image-2": { generate: "Qwen/Qwen-Image", edit: "Qwen/Qwen-Image-Edit-2509" },
  "chatgpt-image-latest": { generate: "Qwen/Qwen-Image", edit: "Qwen/Qwen-Image-Edit-2509" },
  // GPT Image 2.5 (2026-09): Flare is the fast one, Sunburst the precise editor. OpenAI has no bare
  // `gpt-image-2.5`; the dated snapshots are names of their own.
  ...Object.fromEntries(
    ["gpt-image-2.5-flare", "gpt-image-2.5-sunburst"].flatMap((name) =>
      [name, `${name}-2026-09-08`].map((id) => [id, GPT_IMAGE_TARGET])
    ),
  ),
  // OpenAI's video models: text to video, or image to video when a first frame is given.
  "sora-2": { generate: "Wan-AI/Wan2.2-T2V-A14B", edit: "Wan-AI/Wan2.2-I2V-A14B" },
  "sora-2-pro": { generate: "Wan-AI/Wan2.2-T2V-A14B", edit: "Wan-AI/Wan2.2-I2V-A14B" },
};

/** A SiliconFlow model id from the environment, or undefined when unset. */
function modelIdOf(raw: string | undefined): string | undefined {
  const id = (raw ?? "").trim();
  if (!id) return undefined;
  if (!/^[\w./:-]{1,200}$/.test(id)) {
    throw new ConfigError("PROMPT_REWRITE_MODEL", `"${id.slice(0, 60)}" is not a model id`);
  }
  return id;
}

/** Parses `alias=Model,alias2=Model|EditModel`. Targets must be known models. */
export function parseAliases(raw: string | undefined): Record<string, AliasTarget> {
  // No prototype: an alias (or a requested model) named "constructor" is only ever a name.
  const out: Record<string, AliasTarget> = Object.create(null);
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

function keyMode(
  sf: string[],
  proxy: string[],
  allowAnonymous: boolean,
  admin: boolean,
): KeyMode {
  if (admin) {
    if (!sf.length) {
      throw new ConfigError(
        "ADMIN_API_KEY",
        "needs SILICONFLOW_API_KEY too: the keys it hands out spend the server's own SiliconFlow keys",
      );
    }
    return "server-key";
  }
  if (!sf.length && !proxy.length) return "pass-through";
  if (!sf.length) {
    throw new ConfigError(
      "PROXY_API_KEYS",
      "needs SILICONFLOW_API_KEY too: the server calls SiliconFlow with its own key(s) when clients present access keys",
    );
  }
  if (proxy.length) return "server-key";
  if (allowAnonymous) return "anonymous";
  throw new ConfigError(
    "SILICONFLOW_API_KEY",
    "is set without PROXY_API_KEYS, so anyone who can reach this server would spend your credit. " +
      "Set PROXY_API_KEYS to the access keys you hand out, or ALLOW_ANONYMOUS=true if that is really what you want.",
  );
}

/**
 * `KV_PATH`: where access keys, quotas and usage live. A file (`./data/kv.sqlite3` by default),
 * `:memory:`, or a KV Connect URL; on Deno Deploy, unset means the platform's KV.
 */
function kvPathOf(get: (name: string) => string | undefined): string | undefined {
  const raw = (get("KV_PATH") ?? "").trim();
  if (raw) return raw;
  return get("DENO_DEPLOYMENT_ID") ? undefined : DEFAULTS.kvPath;
}

/** `VIDEO_POLL_MS` and `VIDEO_JOB_TIMEOUT_MS` (up to a week). */
function videoOf(int: IntegerReader, demo: boolean) {
  const timeout = int("VIDEO_JOB_TIMEOUT_MS", DEFAULTS.videoJobTimeoutMs, 1_000, 604_800_000);
  return {
    // The demo's jobs take seconds: it checks on them every second.
    videoPollMs: int("VIDEO_POLL_MS", demo ? 1_000 : DEFAULTS.videoPollMs, 100, 600_000),
    videoJobTimeoutMs: timeout,
    // An async image task's lifetime, up to 30 days.
    imageTaskTtlMs: int("IMAGE_TASK_TTL_MS", DEFAULTS.imageTaskTtlMs, 1_000, 2_592_000_000),
  };
}

/** `MAX_BODY_BYTES` and `MAX_BODY_BUFFER_BYTES`, which must hold at least one body. */
function bodyLimitsOf(int: IntegerReader) {
  const maxBodyBytes = int("MAX_BODY_BYTES", DEFAULTS.maxBodyBytes, 1024, 1024 * 1024 * 1024);
  const maxBodyBufferBytes = int(
    "MAX_BODY_BUFFER_BYTES",
    Math.max(DEFAULTS.maxBodyBufferBytes, maxBodyBytes),
    1024,
    64 * 1024 * 1024 * 1024,
  );
  if (maxBodyBufferBytes < maxBodyBytes) {
    throw new ConfigError(
      "MAX_BODY_BUFFER_BYTES",
      `must be at least MAX_BODY_BYTES (${maxBodyBytes}), got ${maxBodyBufferBytes}`,
    );
  }
  return { maxBodyBytes, maxBodyBufferBytes };
}

/**
 * Reads the configuration; `get` returns a variable's value (from the environment or a flag).
 * Throws a {@link ConfigError} naming the variable when a value cannot be used. The server's
 * entry points pass `{ dataDir: true }` (see {@link LoadOptions}).
 *
 * @example From the environment, or from a table
 * ```ts
 * import { loadConfig } from "../mod.ts";
 *
 * const config = loadConfig((name) => ({ DEMO: "true", MAX_CONCURRENCY: "8" })[name]);
 * if (!(config.demo && config.maxConcurrency === 8 && config.imageStore === undefined)) {
 *   throw new Error("not the configuration asked for");
 * }
 * // The server itself: loadConfig((name) => Deno.env.get(name), { dataDir: true })
 * ```
 */
export function loadConfig(
  get: (name: string) => string | undefined,
  options: LoadOptions = {},
): Config {
  // Unset, IMAGE_STORE and KV_PATH mean ./data for the server, and nothing on disk for a library.
  const lookup = options.dataDir
    ? get
    : (name: string) =>
      get(name) ?? (name === "IMAGE_STORE" ? "none" : name === "KV_PATH" ? ":memory:" : undefined);
  return load(lookup);
}

/** Options of {@link loadConfig}. */
export interface LoadOptions {
  /** Unset `IMAGE_STORE`/`KV_PATH` mean `./data` (the server); else no store, an in-memory KV. */
  dataDir?: boolean;
}

function load(get: (name: string) => string | undefined): Config {
  const int: IntegerReader = (name, fallback, min, max) =>
    integer(name, get(name), fallback, min, max);
  const siliconflowKeys = keyList(get("SILICONFLOW_API_KEY"));
  const proxyKeys = keyList(get("PROXY_API_KEYS"));
  const host = (get("HOST") ?? "").trim() || DEFAULTS.host;
  if (!/^[\w.:[\]-]+$/.test(host)) throw new ConfigError("HOST", `is not a host name: "${host}"`);
  const allowAnonymous = boolean("ALLOW_ANONYMOUS", get("ALLOW_ANONYMOUS"));
  const adminApiKey = (get("ADMIN_API_KEY") ?? "").trim() || undefined;
  return Object.freeze({
    port: int("PORT", DEFAULTS.port, 0, 65535),
    host,
    baseUrl: baseUrlOf(get("SILICONFLOW_BASE_URL"), "SILICONFLOW_BASE_URL", DEFAULTS.baseUrl),
    upstreamTimeoutMs: int("UPSTREAM_TIMEOUT_MS", DEFAULTS.upstreamTimeoutMs, 1, 3_600_000),
    keepAliveMs: int("KEEPALIVE_MS", DEFAULTS.keepAliveMs, 1, 600_000),
    ...bodyLimitsOf(int),
    logFormat: oneOf("LOG_FORMAT", get("LOG_FORMAT"), ["text", "json"] as const),
    logLevel: oneOf("LOG_LEVEL", get("LOG_LEVEL"), ["info", "warn", "error"] as const),
    ...storeOf(get, int, DEFAULTS),
    progress: oneOf("PROGRESS", get("PROGRESS"), ["off", "reasoning"] as const),
    demo: boolean("DEMO", get("DEMO")),
    siliconflowKeys,
    proxyKeys,
    keyMode: keyMode(siliconflowKeys, proxyKeys, allowAnonymous, adminApiKey !== undefined),
    adminApiKey,
    kvPath: kvPathOf(get),
    maxConcurrency: int("MAX_CONCURRENCY", DEFAULTS.maxConcurrency, 1, 100_000),
    bodyTimeoutMs: int("BODY_TIMEOUT_MS", DEFAULTS.bodyTimeoutMs, 1, 3_600_000),
    shutdownGraceMs: int("SHUTDOWN_GRACE_MS", DEFAULTS.shutdownGraceMs, 0, 3_600_000),
    strictParams: boolean("STRICT_PARAMS", get("STRICT_PARAMS")),
    playground: boolean("PLAYGROUND", get("PLAYGROUND") ?? "true"),
    trustProxy: boolean("TRUST_PROXY", get("TRUST_PROXY")),
    webhookSecret: (get("WEBHOOK_SECRET") ?? "").trim() || undefined,
    webhookAllowPrivate: boolean("WEBHOOK_ALLOW_PRIVATE", get("WEBHOOK_ALLOW_PRIVATE")),
    promptRewriteModel: modelIdOf(get("PROMPT_REWRITE_MODEL")),
    mcpAllowedHosts: Object.freeze(
      (get("MCP_ALLOWED_HOSTS") ?? "").split(",").map((h) => h.trim()).filter(Boolean),
    ),
    streamHoldMs: int("STREAM_HOLD_MS", DEFAULTS.streamHoldMs, 0, 600_000),
    ...videoOf(int, boolean("DEMO", get("DEMO"))),
    modelAliases: Object.freeze(
      Object.assign(Object.create(null), DEFAULT_ALIASES, parseAliases(get("MODEL_ALIASES"))),
    ),
  });
}
