/**
 * What a route handler gets for one request: the parsed URL, the request id, the configuration,
 * and helpers that read the body, check the key, pick the model and call SiliconFlow, each with
 * OpenAI-shaped failures.
 * @module
 */
import type { BodyShare } from "./body_budget.ts";
import type { AliasTarget, Config } from "./config.ts";
import { ApiError, invalidParam, toApiError, withRequestId } from "./errors.ts";
import { type DownloadedImage, downloadImage } from "./download.ts";
import { jsonBody } from "./json_body.ts";
import { isAccepted, type KeyPool, withPoolKey } from "./keys.ts";
import type { Logger } from "./logger.ts";
import { findModel, MODELS, type ModelSpec } from "./models.ts";
import {
  CLIENT_CLOSED,
  readLimited,
  type SiliconFlowClient,
  type UpstreamResult,
} from "./siliconflow.ts";

/** Live counters of one server instance; `/healthz` reports them. */
export interface ServerStats {
  /** Generation requests holding a concurrency slot. */
  generations: number;
  /** Streamed answers still open. */
  streams: number;
}

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
  /** The server's own SiliconFlow keys, in server-key and anonymous modes. */
  readonly keyPool?: KeyPool;
  /** The instance's counters. */
  readonly stats: ServerStats;
  /** Aborts when the client goes away or the server's shutdown grace runs out. */
  readonly signal: AbortSignal;
  /** Aborted when the server's shutdown grace runs out. */
  readonly shutdownSignal: AbortSignal;
  /** This request's share of the instance's request-body budget; given back when it is done. */
  readonly bodyShare: BodyShare;
}

function tooLarge(limit: number): ApiError {
  return new ApiError(413, `The request body is larger than ${limit} bytes`, {
    code: "request_too_large",
  });
}

function bodyTimedOut(ctx: RequestContext): ApiError {
  return new ApiError(
    408,
    `The request body did not arrive within ${ctx.config.bodyTimeoutMs} ms`,
    {
      type: "invalid_request_error",
      code: "request_timeout",
    },
  );
}

/** The declared length, after refusing one over the limit before reading anything. */
async function declaredLength(ctx: RequestContext): Promise<number | undefined> {
  const declared = Number(ctx.request.headers.get("content-length") ?? NaN);
  if (!Number.isSafeInteger(declared) || declared < 0) return undefined;
  if (declared > ctx.config.maxBodyBytes) {
    await ctx.request.body?.cancel().catch(() => {});
    throw tooLarge(ctx.config.maxBodyBytes);
  }
  return declared;
}

/** Takes a body's declared length from the instance's budget, and its bytes as they arrive. */
function shareGrower(ctx: RequestContext, declared: number | undefined): (total: number) => void {
  if (declared !== undefined) ctx.bodyShare.grow(declared);
  return (total) => ctx.bodyShare.grow(total);
}

/** Reads the whole body within `BODY_TIMEOUT_MS`, failing with a 413 past `MAX_BODY_BYTES`. */
export async function readBody(ctx: RequestContext): Promise<Uint8Array<ArrayBuffer>> {
  const limit = ctx.config.maxBodyBytes;
  const declared = await declaredLength(ctx);
  const grow = shareGrower(ctx, declared);
  // A slow client is dropped: the body must arrive within BODY_TIMEOUT_MS.
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), ctx.config.bodyTimeoutMs);
  try {
    // Content-Length only sizes the buffer; the limit is enforced on the bytes that arrive.
    const bytes = await readLimited(ctx.request.body, limit, declared, timeout.signal, grow);
    if (bytes === undefined) throw tooLarge(limit);
    return bytes;
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (timeout.signal.aborted) throw bodyTimedOut(ctx);
    throw new ApiError(400, "The request body could not be read", { code: "invalid_body" });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Parses a multipart body straight from the connection, counting bytes as they arrive (413 past
 * `MAX_BODY_BYTES`) and giving up after `BODY_TIMEOUT_MS` (408), without buffering it first.
 */
export async function readFormData(ctx: RequestContext): Promise<FormData> {
  const grow = shareGrower(ctx, await declaredLength(ctx));
  const limit = ctx.config.maxBodyBytes;
  const countParts = partCounter(ctx.request.headers.get("content-type") ?? "");
  let total = 0;
  let failure: ApiError | undefined;
  const source = ctx.request.body?.getReader();
  let counted: ReadableStreamDefaultController<Uint8Array> | undefined;
  const fail = (error: ApiError) => {
    failure ??= error;
    counted?.error(failure);
    source?.cancel().catch(() => {});
  };
  // Pulled by the multipart parser; errored from outside when the body takes too long, which
  // ends the parse at once (a piped stream cannot be aborted while the parser holds it).
  const body = source
    ? new ReadableStream<Uint8Array>({
      start(controller) {
        counted = controller;
      },
      async pull(controller) {
        try {
          const { done, value } = await source.read();
          if (failure) return;
          if (done) return controller.close();
          total += value.byteLength;
          if (total > limit) return fail(tooLarge(limit));
          if (countParts(value) > MAX_MULTIPART_PARTS) return fail(tooManyParts());
          grow(total);
          controller.enqueue(value);
        } catch (err) {
          fail(err instanceof ApiError ? err : invalidMultipart());
        }
      },
      cancel() {
        source.cancel().catch(() => {});
      },
    })
    : null;
  const timer = setTimeout(() => fail(bodyTimedOut(ctx)), ctx.config.bodyTimeoutMs);
  try {
    return await new Response(body, {
      headers: { "content-type": ctx.request.headers.get("content-type") ?? "" },
    }).formData();
  } catch {
    throw failure ?? invalidMultipart();
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The most parts a multipart body may have. The platform's parser takes the whole body at once,
 * so a body of many thousands of tiny parts is refused while it streams, before any parsing.
 */
export const MAX_MULTIPART_PARTS = 100;

function tooManyParts(): ApiError {
  return new ApiError(
    400,
    `The multipart body has more than ${MAX_MULTIPART_PARTS} parts`,
    { param: "body", code: "too_many_parts" },
  );
}

/** Counts the boundary lines of a multipart body chunk by chunk, across chunk edges. */
function partCounter(contentType: string): (chunk: Uint8Array) => number {
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!boundary) return () => 0;
  const marker = `--${boundary[1] ?? boundary[2]}`;
  const latin1 = new TextDecoder("latin1");
  let carry = "";
  let count = 0;
  return (chunk) => {
    const text = carry + latin1.decode(chunk);
    for (let at = text.indexOf(marker); at !== -1; at = text.indexOf(marker, at + marker.length)) {
      count++;
    }
    carry = text.slice(Math.max(0, text.length - marker.length + 1));
    return count;
  };
}

function invalidMultipart(): ApiError {
  return new ApiError(400, "The multipart body could not be parsed", {
    param: "body",
    code: "invalid_multipart",
  });
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

/** Reads a JSON body that must be an object (400 otherwise). */
export async function readJsonObject(ctx: RequestContext): Promise<Record<string, unknown>> {
  const body = await readJson(ctx);
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw invalidParam("body", "The request body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/**
 * Downloads an image that SiliconFlow generated (never a URL from the request), through the
 * upstream fetch (in-process in demo mode), with the upstream timeout.
 */
export function downloadGenerated(
  ctx: RequestContext,
  url: string,
  signal: AbortSignal,
): Promise<DownloadedImage> {
  return downloadImage(url, {
    fetch: ctx.upstreamFetch,
    timeoutMs: ctx.config.upstreamTimeoutMs,
    signal,
  });
}

/** Which key pays for a request's upstream calls. */
export type UpstreamAuth = { kind: "client"; key: string } | { kind: "pool" };

/** Checks the client's key according to the key mode; 401 when it is missing or wrong. */
export function authorize(ctx: RequestContext): UpstreamAuth {
  const header = ctx.request.headers.get("authorization") ?? "";
  const presented = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
  switch (ctx.config.keyMode) {
    case "anonymous":
      return { kind: "pool" };
    case "server-key":
      if (presented && isAccepted(presented, ctx.config.proxyKeys)) return { kind: "pool" };
      throw new ApiError(
        401,
        presented
          ? "Invalid API key: use an access key given out by this server's owner."
          : "Missing API key. Send the access key you were given as 'Authorization: Bearer <key>'.",
        { code: presented ? "invalid_api_key" : "missing_api_key" },
      );
    case "pass-through":
      if (presented) return { kind: "client", key: presented };
      if (ctx.config.demo) return { kind: "client", key: "demo" };
      throw new ApiError(
        401,
        "Missing API key. Send your SiliconFlow key as 'Authorization: Bearer <key>'.",
        { code: "missing_api_key" },
      );
  }
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

/**
 * Takes one of the instance's `MAX_CONCURRENCY` generation slots, or answers 429 at once rather
 * than queueing without bound. Call the returned function exactly once to give it back.
 */
export function acquireGenerationSlot(ctx: RequestContext): () => void {
  if (ctx.stats.generations >= ctx.config.maxConcurrency) {
    throw new ApiError(
      429,
      `This server is busy: ${ctx.config.maxConcurrency} generations are already running. Retry shortly.`,
      { code: "server_busy", headers: { "retry-after": "2" } },
    );
  }
  ctx.stats.generations++;
  let released = false;
  return () => {
    if (!released) ctx.stats.generations--;
    released = true;
  };
}

/** A function making one upstream call with this request's key and cancellation. */
export function upstreamCaller(
  ctx: RequestContext,
  auth: UpstreamAuth,
  signal: AbortSignal,
): (body: Record<string, unknown>) => Promise<UpstreamResult> {
  const call = (apiKey: string, body: Record<string, unknown>) =>
    ctx.client.generate(body, {
      apiKey,
      signal,
      baseUrl: ctx.baseUrl,
      onTraceId: (id) => (ctx.log.traceId = id),
    });
  if (auth.kind === "client") return (body) => call(auth.key, body);
  const pool = ctx.keyPool!;
  return (body) => withPoolKey(pool, (key) => call(key, body));
}

/** A JSON response; one that carries large images (`b64_json`, data URIs) is streamed. */
export function jsonResponse(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  const h = new Headers(headers);
  h.set("content-type", "application/json; charset=utf-8");
  return new Response(jsonBody(body), { status, headers: h });
}

/**
 * The error to answer for a failure, with the request id in its message. A call cut short by the
 * server's shutdown is told apart from a client that left; anything that is not an
 * {@link ApiError} is a bug, logged and answered as a 500.
 */
export function finalError(ctx: RequestContext, err: unknown): ApiError {
  if (ctx.shutdownSignal.aborted && err instanceof ApiError && err.status === CLIENT_CLOSED) {
    err = new ApiError(503, "The server is restarting and stopped this generation; please retry", {
      code: "server_shutting_down",
    });
  }
  if (!(err instanceof ApiError)) {
    ctx.logger({
      level: "error",
      msg: "unhandled error",
      req: ctx.requestId,
      error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
    });
  }
  return withRequestId(toApiError(err), ctx.requestId);
}
