/**
 * Reading bodies whole under a byte limit: request bodies (413 past `MAX_BODY_BYTES`, 408 after
 * `BODY_TIMEOUT_MS`, their bytes taken from the instance's body budget, 503 past it) as bytes,
 * JSON or a multipart form, and fetched bodies (SiliconFlow's answers, image downloads).
 * @module
 */
import { ApiError, notAnObject } from "./errors.ts";
import { concatBytes, release } from "../bytes.ts";
import { timeLimit } from "../time_limit.ts";
import { isJsonObject } from "../values.ts";

/**
 * The bytes of request bodies one instance holds at once, across requests
 * (`MAX_BODY_BUFFER_BYTES`): `MAX_BODY_BYTES` bounds one body, this bounds their sum, so that
 * clients that each send a body just under the limit and then stall cannot grow the process
 * without bound. A request that would pass it is answered 503 with `Retry-After` at once.
 */
export interface BodyBudget {
  /** Bytes held now. */
  held: number;
  /** The most bytes held at once. */
  readonly limit: number;
}

/** One request's share of a {@link BodyBudget}: it grows as the body arrives, and is given back. */
export class BodyShare {
  #taken = 0;

  /** Creates an empty share of `budget`. */
  constructor(readonly budget: BodyBudget) {}

  /** Makes the share at least `bytes`; a 503 when the budget cannot cover it. */
  grow(bytes: number): void {
    if (bytes <= this.#taken) return;
    if (this.budget.held + bytes - this.#taken > this.budget.limit) {
      throw new ApiError(
        503,
        "This server is receiving too many large requests at once. Retry shortly.",
        { code: "server_busy", headers: { "retry-after": "2" } },
      );
    }
    this.budget.held += bytes - this.#taken;
    this.#taken = bytes;
  }

  /** Gives everything back; safe to call more than once. */
  release(): void {
    this.budget.held -= this.#taken;
    this.#taken = 0;
  }
}

/**
 * Bodies declared at most this long are small: a download of one is read in one call and stored
 * in one write, and a stored file of this size is served from one read.
 */
export const WHOLE_READ_BYTES = 64 * 1024;

/** A message's `Content-Length`, when it is a sane number. */
export function contentLength(headers: Headers): number | undefined {
  const raw = headers.get("content-length");
  if (raw === null) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** The limits one request body is read under. */
export interface BodyLimits {
  /** `MAX_BODY_BYTES`: the most bytes one body may have. */
  maxBytes: number;
  /** `BODY_TIMEOUT_MS`: how long the whole body may take to arrive. */
  timeoutMs: number;
  /** This request's share of the instance's body budget. */
  share: BodyShare;
}

/** Options of {@link readLimited}. */
export interface ReadOptions {
  /** A trusted length (`Content-Length`): the bytes are copied into one buffer of that size. */
  declared?: number;
  /** Hears the running total (and may throw to stop the read). */
  onProgress?: (total: number) => void;
  /** Cancels the stream; its reason is thrown. */
  signal?: AbortSignal;
  /** The chunks are the reader's to spend (a request body's): each is freed once copied. */
  releaseChunks?: boolean;
}

/**
 * Reads a whole stream, counting its bytes as they arrive: undefined once it passes `limit`. With
 * a declared length the bytes go straight into one buffer of that size (a 32 MB body is then held
 * once, not as chunks and again joined; a wrong length still gives every byte).
 */
export async function readLimited(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  options: ReadOptions = {},
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  if (!body) return new Uint8Array();
  const { onProgress, signal } = options;
  const reader = body.getReader();
  const cancel = () => reader.cancel(signal?.reason).catch(() => {});
  signal?.addEventListener("abort", cancel, { once: true });
  let buffer = options.declared !== undefined && options.declared <= limit
    ? new Uint8Array(options.declared)
    : undefined;
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      signal?.throwIfAborted();
      if (done) break;
      const length = value.byteLength;
      if (total + length > limit) return undefined;
      if (buffer && total + length <= buffer.byteLength) {
        buffer.set(value, total);
        if (options.releaseChunks) release(value);
      } else {
        if (buffer) chunks.push(buffer.subarray(0, total)); // the length was wrong: go on in chunks
        buffer = undefined;
        chunks.push(value);
      }
      total += length;
      onProgress?.(total);
    }
  } finally {
    signal?.removeEventListener("abort", cancel);
    await reader.cancel().catch(() => {});
  }
  if (buffer) return total === buffer.byteLength ? buffer : buffer.slice(0, total);
  return concatBytes(chunks, total);
}

/**
 * Reads a fetched response's whole body, or returns undefined when it passes `limit` bytes. The
 * HTTP layer holds a body to its `Content-Length`, so a declared one is read in one call; one
 * without is counted as it arrives. Aborting the fetch's signal ends either read.
 */
export async function readResponse(
  response: Response,
  limit: number,
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  const declared = contentLength(response.headers);
  if (declared === undefined) return await readLimited(response.body, limit);
  if (declared > limit) {
    await response.body?.cancel().catch(() => {});
    return undefined;
  }
  return await response.bytes();
}

/** A promise that rejects with the signal's reason when it aborts. */
function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) =>
    signal.addEventListener("abort", () => reject(signal.reason), { once: true })
  );
}

/** The 413 for a body past `MAX_BODY_BYTES`. */
function tooLarge(limit: number): ApiError {
  return new ApiError(413, `The request body is larger than ${limit} bytes`, {
    code: "request_too_large",
  });
}

/**
 * Reads the whole request body within `BODY_TIMEOUT_MS` (408), up to `MAX_BODY_BYTES` (413), its
 * bytes taken from the body budget as they arrive (503). A declared length over the limit is
 * refused before anything is read, and is taken from the budget at once. A small declared body is
 * read in one call, raced against the time limit (the 408 closes the connection, which ends the
 * read): a sixth of a small request's CPU, against the stream read, measured.
 */
export async function readBody(
  request: Request,
  limits: BodyLimits,
): Promise<Uint8Array<ArrayBuffer>> {
  const { maxBytes, share } = limits;
  const declared = contentLength(request.headers);
  if (declared !== undefined && declared > maxBytes) throw tooLarge(maxBytes);
  if (declared !== undefined) share.grow(declared);
  const limit = timeLimit(limits.timeoutMs);
  try {
    const bytes = declared !== undefined && declared <= WHOLE_READ_BYTES
      ? await Promise.race([request.bytes(), rejectOnAbort(limit.signal)])
      : await readLimited(request.body, maxBytes, {
        declared,
        onProgress: (total) => share.grow(total),
        signal: limit.signal,
        releaseChunks: true,
      });
    if (!bytes) throw tooLarge(maxBytes);
    return bytes;
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (!limit.timedOut()) {
      throw new ApiError(400, "The request body could not be read", {
        code: "invalid_body",
        cause: err,
      });
    }
    throw new ApiError(408, `The request body did not arrive within ${limits.timeoutMs} ms`, {
      code: "request_timeout",
    });
  } finally {
    limit.clear();
  }
}

const utf8 = new TextDecoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The body as text; a 400 when it is not valid UTF-8. The lenient decoder is tried first (it holds
 * the text alone, where the strict one held three times a 32 MB body at its peak, measured): any
 * invalid byte becomes U+FFFD, so only a text that has one needs the strict check.
 */
export function decodeUtf8(bytes: Uint8Array): string {
  const text = utf8.decode(bytes);
  if (text.includes("\uFFFD")) {
    try {
      strictUtf8.decode(bytes);
    } catch {
      throw new ApiError(400, "The request body is not valid UTF-8", { code: "invalid_json" });
    }
  }
  return text;
}

/** Reads the body up to the configured limit and parses it as JSON. */
export async function readJson(request: Request, limits: BodyLimits): Promise<unknown> {
  const bytes = await readBody(request, limits);
  const text = decodeUtf8(bytes);
  release(bytes);
  if (!/\S/.test(text)) {
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
export async function readJsonObject(
  request: Request,
  limits: BodyLimits,
): Promise<Record<string, unknown>> {
  const body = await readJson(request, limits);
  if (!isJsonObject(body)) throw notAnObject();
  return body;
}
