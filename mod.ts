/**
 * SiliconFlow Image → OpenAI: OpenAI's API for SiliconFlow's image models. Mount
 * {@link createHandler} in your own Deno app, or run `main.ts` (`deno task start`).
 *
 * The handler answers:
 * - `POST /v1/chat/completions`: the last user message becomes an image generation (or an edit,
 *   with attached images or images from earlier in the conversation); streamed or not.
 * - `POST /v1/images/generations` and `POST /v1/images/edits` (multipart or JSON): OpenAI's
 *   Images API, `url` or `b64_json`.
 * - `GET /v1/models` and `GET /v1/models/{id}`: SiliconFlow's image models and the OpenAI aliases.
 * - `POST /v1/responses`: the Responses API, for image generation, streamed or not.
 * - `GET /images/{id}.{ext}`: images re-hosted in the image store (`IMAGE_STORE`).
 * - `GET /healthz`, CORS preflight, and in demo mode the stand-in's images.
 *
 * @example Mount it
 * ```ts
 * import { createHandler, loadConfig } from "./mod.ts";
 *
 * const handler = createHandler({ config: loadConfig((name) => ({ DEMO: "true" })[name]) });
 * const response = await handler(new Request("http://localhost/v1/models"));
 * const { data } = await response.json();
 * if (!data.some((m: { id: string }) => m.id === "Qwen/Qwen-Image")) throw new Error("no model");
 * // Once it serves no more requests: stops its timers and closes its KV.
 * await handler.close();
 * ```
 * @module
 */
export { createHandler, type Handler, type HandlerOptions } from "./lib/handler.ts";
export {
  type AliasTarget,
  type Config,
  ConfigError,
  ENV_NAMES,
  type ImageStoreConfig,
  type KeyMode,
  loadConfig,
  type LoadOptions,
} from "./lib/config.ts";
export { createLogger, type Logger, type LogLevel, type LogRecord } from "./lib/server/logger.ts";
export { VERSION } from "./lib/version.ts";
