/**
 * What a route handler gets for one request: the parsed URL, the request id, the configuration,
 * and helpers that read the body, the key and the model with OpenAI-shaped failures.
 * @module
 */
import type { AliasTarget, Config } from "./config.ts";
import { ApiError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import { findModel, MODELS, type ModelSpec } from "./models.ts";
import { readLimited, type SiliconFlowClient, type UpstreamResult } from "./siliconflow.ts";

/** Per-request state shared by the router and route handlers. */
export interface RequestContext {
  /** The incoming request. */
  readonly request: Request;
  /** Its parsed URL. */
  readonly url: URL;
  /** `X-Request-Id` of this request. */
  readonly requestId: string;
  /** Named groups of the matched route pattern. */
  params: Record<string, string | undefined>;
  /** The server configuration. */
  readonly config: Config;
  /** The clock (ms since the epoch). */
  readonly now: () => number;
  /** The logger. */
  readonly logger: Logger;
  /** Fields for the request's log line. */
  readonly log: { model?: string; traceId?: string; outcome?: string };
  /** For streamed answers: resolves with the final status when the stream ends. */
  streamDone?: Promise<number>;
  /** The upstream client. */
  readonly client: SiliconFlowClient;
  /** The upstream base URL for this request. */
  readonly baseUrl: string;
  /** The fetch for upstream resources (generated images); in-process in demo mode. */
  readonly upstreamFetch: typeof fetch;
}

/** Reads the whole body, failing with a 413 past the configured limit. */
export async function readBody(ctx: RequestContext): Promise<Uint8Array<ArrayBuffer>> {
  const length = Number(ctx.request.headers.get("content-length") ?? NaN);
  // Content-Length only sizes the buffer; the limit is enforced on the bytes that arrive.
  const bytes = await readLimited(
    ctx.request.body,
    ctx.config.maxBodyBytes,
    Number.isSafeInteger(length) && length >= 0 ? length : undefined,
  );
  if (bytes === undefined) {
    throw new ApiError(413, `The request body is larger than ${ctx.config.maxBodyBytes} bytes`, {
      code: "request_too_large",
    });
  }
  return bytes;
}

/** Reads the body up to the configured limit and parses it as JSON. */
export async function readJson(ctx: RequestContext): Promise<unknown> {
  const bytes = await readBody(ctx);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ApiError(400, "The request body is not valid UTF-8", { code: "invalid_json" });
  }
  if (!text.trim()) {
    throw new ApiError(400, "The request body is empty; send JSON", { code: "invalid_json" });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, `The request body is not valid JSON: ${(err as Error).message}`, {
      code: "invalid_json",
    });
  }
}

/** The bearer key the client sent; 401 without one. The demo mode needs none. */
export function requireApiKey(ctx: RequestContext): string {
  const header = ctx.request.headers.get("authorization") ?? "";
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (m) return m[1];
  if (ctx.config.demo) return "demo";
  throw new ApiError(
    401,
    "Missing API key. Send your SiliconFlow key as 'Authorization: Bearer <key>'.",
    { code: "missing_api_key" },
  );
}

/** Resolves a model id or alias; `withImages` picks an alias's edit model. 404 if unknown. */
export function resolveModel(
  ctx: RequestContext,
  id: unknown,
  withImages: boolean,
  param = "model",
): ModelSpec {
  if (typeof id !== "string" || !id.trim()) {
    throw new ApiError(400, "model is required", { param, code: "missing_model" });
  }
  const alias: AliasTarget | undefined = ctx.config.modelAliases[id.trim().toLowerCase()];
  const target = alias ? (withImages ? alias.edit ?? alias.generate : alias.generate) : id.trim();
  const model = findModel(target);
  if (!model) {
    throw new ApiError(
      404,
      `The model '${id.slice(0, 200)}' does not exist here. Available: ${
        MODELS.map((m) => m.id).join(", ")
      } (see GET /v1/models).`,
      { param, code: "model_not_found" },
    );
  }
  return model;
}

/** A function making one upstream call with this request's key and cancellation. */
export function upstreamCaller(
  ctx: RequestContext,
  apiKey: string,
  signal: AbortSignal,
): (body: Record<string, unknown>) => Promise<UpstreamResult> {
  return (body) =>
    ctx.client.generate(body, {
      apiKey,
      signal,
      baseUrl: ctx.baseUrl,
      onTraceId: (id) => (ctx.log.traceId = id),
    });
}

/** A JSON response. */
export function jsonResponse(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  const h = new Headers(headers);
  h.set("content-type", "application/json; charset=utf-8");
  return new Response(JSON.stringify(body), { status, headers: h });
}
