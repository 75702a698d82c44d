/**
 * SiliconFlow Image → OpenAI: an OpenAI-compatible API (chat completions, models) in front of
 * SiliconFlow's image models. Mount {@link createHandler} in your own Deno app, or run `main.ts`.
 *
 * @example
 * ```ts
 * import { createHandler, loadConfig } from "./mod.ts";
 * const handler = createHandler({ config: loadConfig((name) => Deno.env.get(name)) });
 * Deno.serve(handler);
 * ```
 * @module
 */
export { createHandler, type Handler, type HandlerOptions } from "./lib/handler.ts";
export {
  type AliasTarget,
  type Config,
  ConfigError,
  DEFAULT_ALIASES,
  DEFAULTS,
  ENV_NAMES,
  loadConfig,
} from "./lib/config.ts";
export { findModel, MODELS, type ModelSpec, type ParamSpec } from "./lib/models.ts";
export { createDemoUpstream, type DemoUpstreamOptions } from "./lib/demo_upstream.ts";
export { ApiError, type ApiErrorOptions, type OpenAIErrorBody } from "./lib/errors.ts";
export { createLogger, type Logger, type LogRecord } from "./lib/logger.ts";
export { type KeyMode } from "./lib/keys.ts";
export { VERSION } from "./lib/version.ts";
