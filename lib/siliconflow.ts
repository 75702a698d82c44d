/**
 * The SiliconFlow client: one `POST {base}/images/generations`, with a timeout, abort on client
 * disconnect, a cap on the response size, and the mapping of upstream failures to OpenAI errors.
 * @module
 */
import { ApiError } from "./errors.ts";
import { isHttpUrl, splitDataUri } from "./image_ref.ts";
import { jsonBody } from "./json_body.ts";

/** The header SiliconFlow puts on every response, for its support desk. */
export const TRACE_HEADER = "x-siliconcloud-trace-id";

/** The largest upstream JSON answer read; anything longer is a fault. */
export const MAX_UPSTREAM_RESPONSE_BYTES: number = 16 * 1024 * 1024;

/** What one successful upstream call produced. */
export interface UpstreamResult {
  /** Image URLs (or data URIs), in order. */
  images: string[];
  /** The seed SiliconFlow reports, if any. */
  seed?: number;
  /** The upstream trace id, if any. */
  traceId?: string;
}

/** Per-call options. */
export interface CallOptions {
  /** The SiliconFlow key to send. */
  apiKey: string;
  /** Aborts the call when the client goes away. */
  signal?: AbortSignal;
  /** Base URL, e.g. `https://api.siliconflow.cn/v1`. */
  baseUrl: string;
  /** Called with the trace id as soon as the upstream headers arrive. */
  onTraceId?: (traceId: string) => void;
}

/** The status this proxy answers when the client itself went away (nginx's convention). */
export const CLIENT_CLOSED = 499;

/** Joins chunks into one buffer (no copy for a single chunk). */
function join(chunks: Uint8Array[], total: number): Uint8Array<ArrayBuffer> {
  // Body chunks from fetch and Deno.serve are backed by plain ArrayBuffers.
  if (chunks.length === 1) return chunks[0] as Uint8Array<ArrayBuffer>;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/**
 * Reads a whole body, or returns undefined once it passes `limit` bytes. With `sizeHint` (a
 * trusted `Content-Length`) the bytes are copied once into one buffer of that size as they arrive,
 * instead of being kept as chunks and joined at the end; a wrong hint still gives every byte.
 * (Deno's BYOB reads of a request body were measured to hold twice the body, so chunks are read
 * the default way.) When `signal` aborts, reading stops and the signal's reason is thrown.
 * `onProgress` hears the running total after every chunk and may throw to stop the read.
 */
export async function readLimited(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  sizeHint?: number,
  signal?: AbortSignal,
  onProgress?: (total: number) => void,
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  if (!body) return new Uint8Array();
  const reader = body.getReader();
  if (signal?.aborted) {
    await reader.cancel(signal.reason).catch(() => {});
    throw signal.reason;
  }
  // An abort cancels the reader, which ends the pending read. (Racing each read against one
  // never-settled abort promise would keep every chunk reachable from it: twice the body.)
  const onAbort = () => reader.cancel(signal?.reason).catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });

  let buffer = sizeHint !== undefined && sizeHint <= limit ? new Uint8Array(sizeHint) : undefined;
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (signal?.aborted) throw signal.reason;
      if (done) break;
      if (total + value.byteLength > limit) {
        await reader.cancel().catch(() => {});
        return undefined;
      }
      if (buffer && total + value.byteLength <= buffer.byteLength) {
        buffer.set(value, total);
      } else {
        if (buffer) chunks.push(buffer.subarray(0, total)); // the hint was wrong: go on in chunks
        buffer = undefined;
        chunks.push(value);
      }
      total += value.byteLength;
      onProgress?.(total);
    }
  } catch (err) {
    await reader.cancel().catch(() => {});
    throw err;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
  if (buffer) return total === buffer.byteLength ? buffer : buffer.slice(0, total);
  return join(chunks, total);
}

/** A network error's message with its cause ("fetch failed" alone says nothing). */
function describeNetworkError(err: unknown): string {
  const e = err as { message?: unknown; cause?: { message?: unknown } } | undefined;
  const cause = e?.cause?.message ? `: ${String(e.cause.message)}` : "";
  // Never repeat credentials that a URL in the message may carry.
  return `${String(e?.message ?? err)}${cause}`.replace(/\/\/[^/\s@]*@/g, "//").slice(0, 300);
}

function withTrace(message: string, traceId?: string): string {
  return traceId ? `${message} (SiliconFlow trace id: ${traceId})` : message;
}

/** Pulls a readable message out of an upstream error body (JSON `{code,message,data}` or text). */
export function upstreamMessage(text: string): { message: string; code?: string } {
  const trimmed = text.trim();
  try {
    const parsed: unknown = JSON.parse(trimmed);
    if (typeof parsed === "string") return { message: parsed };
    if (parsed && typeof parsed === "object") {
      const o = parsed as Record<string, unknown>;
      const inner = o.error && typeof o.error === "object"
        ? (o.error as Record<string, unknown>)
        : undefined;
      const message = o.message ?? inner?.message ?? o.error;
      const code = o.code ?? inner?.code;
      if (typeof message === "string" && message) {
        return { message, code: code === undefined || code === null ? undefined : String(code) };
      }
    }
  } catch {
    // Plain text: SiliconFlow answers 401/403/404/504 that way.
  }
  return { message: trimmed.slice(0, 500) };
}

const KEPT_STATUSES = new Set([400, 401, 403, 429, 503]);
const CODE_BY_STATUS: Record<number, string> = {
  401: "invalid_api_key",
  403: "permission_denied",
  429: "rate_limit_exceeded",
  503: "upstream_overloaded",
  504: "upstream_timeout",
};

/** Maps a non-200 SiliconFlow answer to the error this proxy answers. */
export function mapUpstreamError(
  status: number,
  text: string,
  headers: Headers,
  traceId?: string,
): ApiError {
  const { message, code } = upstreamMessage(text);
  const text500 = message || `HTTP ${status}`;
  const extra: Record<string, string> = {};
  const retryAfter = headers.get("retry-after");
  if (status === 429 && retryAfter && /^[\w ,:+-]{1,64}$/.test(retryAfter)) {
    extra["retry-after"] = retryAfter;
  }
  if (KEPT_STATUSES.has(status)) {
    return new ApiError(status, withTrace(`SiliconFlow: ${text500}`, traceId), {
      code: CODE_BY_STATUS[status] ?? code ?? null,
      headers: extra,
    });
  }
  if (status === 504) {
    return new ApiError(504, withTrace(`SiliconFlow timed out: ${text500}`, traceId), {
      code: "upstream_timeout",
    });
  }
  return new ApiError(
    502,
    withTrace(`SiliconFlow answered HTTP ${status}: ${text500}`, traceId),
    { code: "upstream_error" },
  );
}

/** Parses a 200 answer: `images` (or `data`) entries with `url` (or `b64_json`). */
export function parseUpstreamSuccess(text: string, traceId?: string): UpstreamResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ApiError(
      502,
      withTrace("SiliconFlow answered with something that is not JSON", traceId),
      {
        code: "upstream_bad_response",
      },
    );
  }
  const o = parsed && typeof parsed === "object" ? parsed as Record<string, unknown> : undefined;
  const list = o?.images ?? o?.data;
  if (!Array.isArray(list)) {
    throw new ApiError(502, withTrace("SiliconFlow's answer has no images list", traceId), {
      code: "upstream_bad_response",
    });
  }
  const images: string[] = [];
  for (const item of list) {
    const entry = item && typeof item === "object" ? item as Record<string, unknown> : {};
    if (typeof entry.url === "string" && (isHttpUrl(entry.url) || splitDataUri(entry.url))) {
      images.push(entry.url);
    } else if (typeof entry.b64_json === "string" && entry.b64_json) {
      images.push(`data:image/png;base64,${entry.b64_json}`);
    } else {
      throw new ApiError(
        502,
        withTrace("SiliconFlow's answer has an image without a URL", traceId),
        {
          code: "upstream_bad_response",
        },
      );
    }
  }
  if (images.length === 0) {
    throw new ApiError(
      400,
      withTrace(
        "SiliconFlow returned no images. This usually means its content filter blocked the prompt or an input image; try rewording it.",
        traceId,
      ),
      { code: "no_images_returned" },
    );
  }
  const seed = typeof o?.seed === "number" ? o.seed : undefined;
  return { images, seed, traceId };
}

/** Options of {@link SiliconFlowClient}. */
export interface SiliconFlowClientOptions {
  /** The fetch to use; tests and the demo mode pass their own. */
  fetch?: typeof fetch;
  /** Gives up on a call after this many milliseconds. */
  timeoutMs: number;
  /**
   * The most upstream calls that may be in flight at once. With the platform's own fetch, calls
   * are spread over enough HTTP clients that no connection carries more than
   * {@link STREAMS_PER_CONNECTION} of them.
   */
  maxInFlight?: number;
  /** The server's own keys: removed from every upstream error text, whatever their length. */
  secrets?: readonly string[];
}

/**
 * The most concurrent calls put on one upstream connection. HTTP/2 servers may cap concurrent
 * streams per connection (RFC 9113 recommends a cap of at least 100), and Deno's fetch queues
 * calls past the cap on that one connection instead of opening another, so generations that take
 * tens of seconds would wait for each other.
 */
export const STREAMS_PER_CONNECTION = 100;

/** Calls SiliconFlow's image generation endpoint. */
export class SiliconFlowClient {
  #fetch: typeof fetch;
  #timeoutMs: number;
  // The first lane is fetch's shared client; each further one, made when the others are full,
  // has a connection pool of its own. They live as long as the process.
  #lanes: { client?: Deno.HttpClient; inFlight: number }[] = [{ inFlight: 0 }];
  #maxLanes: number;
  #secrets: readonly string[];

  /** Creates a client. */
  constructor(options: SiliconFlowClientOptions) {
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#secrets = (options.secrets ?? []).filter(Boolean);
    this.#timeoutMs = options.timeoutMs;
    this.#maxLanes = options.fetch
      ? 1
      : Math.max(1, Math.ceil((options.maxInFlight ?? 0) / STREAMS_PER_CONNECTION));
  }

  /** The lane (HTTP client) with the fewest calls in flight, adding one when all are full. */
  #lane(): { client?: Deno.HttpClient; inFlight: number } {
    let best = this.#lanes[0];
    for (const lane of this.#lanes) if (lane.inFlight < best.inFlight) best = lane;
    if (best.inFlight >= STREAMS_PER_CONNECTION && this.#lanes.length < this.#maxLanes) {
      best = { client: Deno.createHttpClient({}), inFlight: 0 };
      this.#lanes.push(best);
    }
    return best;
  }

  /** Makes one generation call; throws {@link ApiError} on any failure. */
  async generate(body: Record<string, unknown>, options: CallOptions): Promise<UpstreamResult> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.#timeoutMs);
    const onAbort = () => controller.abort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    let traceId: string | undefined;
    const lane = this.#lane();
    lane.inFlight++;
    try {
      if (options.signal?.aborted) throw new DOMException("aborted", "AbortError");
      const response = await this.#fetch(
        `${options.baseUrl.replace(/\/+$/, "")}/images/generations`,
        {
          method: "POST",
          headers: {
            "authorization": `Bearer ${options.apiKey}`,
            "content-type": "application/json",
            "accept": "application/json",
          },
          body: jsonBody(body),
          signal: controller.signal,
          // A redirect from the API is a fault to report, never a hop to somewhere else.
          redirect: "manual",
          ...(lane.client ? { client: lane.client } : {}),
        },
      );
      traceId = response.headers.get(TRACE_HEADER)?.slice(0, 128) || undefined;
      if (traceId) options.onTraceId?.(traceId);
      const bytes = await readLimited(response.body, MAX_UPSTREAM_RESPONSE_BYTES);
      if (bytes === undefined) {
        throw new ApiError(502, withTrace("SiliconFlow's answer is too large", traceId), {
          code: "upstream_bad_response",
        });
      }
      let text = new TextDecoder().decode(bytes);
      // Should SiliconFlow ever echo a key, it must not reach our client or logs. An error text
      // loses every configured key and the one sent, however short; an answer's image links are
      // only ever rid of a long key, which cannot be part of a link by chance.
      if (response.status !== 200) {
        for (const key of [...this.#secrets, options.apiKey]) {
          if (key) text = text.replaceAll(key, "[redacted]");
        }
        throw mapUpstreamError(response.status, text, response.headers, traceId);
      }
      if (options.apiKey.length >= 16) text = text.replaceAll(options.apiKey, "[redacted]");
      return parseUpstreamSuccess(text, traceId);
    } catch (err) {
      if (err instanceof ApiError) throw err;
      if (options.signal?.aborted) {
        throw new ApiError(CLIENT_CLOSED, "The client closed the request", {
          code: "client_closed",
        });
      }
      if (timedOut) {
        throw new ApiError(
          504,
          withTrace(`SiliconFlow did not answer within ${this.#timeoutMs} ms`, traceId),
          { code: "upstream_timeout" },
        );
      }
      throw new ApiError(
        502,
        withTrace(
          `Could not reach SiliconFlow: ${describeNetworkError(err)}`,
          traceId,
        ),
        { code: "upstream_unreachable" },
      );
    } finally {
      lane.inFlight--;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }
}
