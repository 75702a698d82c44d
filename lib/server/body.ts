/**
 * Reading request bodies: whole bodies up to a byte limit and within a time limit (413 and 408),
 * JSON, and multipart parsed from a counted stream. Each body's bytes are taken from the
 * instance's body budget (503 past it). Functions of the request and its limits; no context.
 * @module
 */
import { ApiError, notAnObject } from "./errors.ts";
import type { BodyShare } from "./body_budget.ts";
import { after, deadline } from "./deadline.ts";
import { isJsonObject } from "./values.ts";

/**
 * Fetched bodies declared at most this long are read in one call (`bytes()`): each chunked read
 * of a fetch body allocates a 64 KiB buffer, which made reading a 200-byte answer cost about
 * 80 µs (measured). Longer ones are read in chunks, counted as they arrive; one call would hold
 * more at its peak. Request bodies declared this long are read in one call too, raced against
 * their time limit (`readBody`).
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
export interface ReadLimitedOptions {
  /** Past this many bytes the read stops and answers undefined. */
  limit: number;
  /** A trusted `Content-Length`: the bytes are copied once into one buffer of that size. */
  sizeHint?: number;
  /** Stops the read; its reason is thrown. */
  signal?: AbortSignal;
  /** Hears the running total after every chunk; may throw to stop the read. */
  onProgress?: (total: number) => void;
  /**
   * The chunks are the reader's to spend (a request body's): each is freed once copied into the
   * `sizeHint` buffer (see {@link release}).
   */
  releaseChunks?: boolean;
}

/**
 * Frees the memory of bytes that nothing else holds now, rather than at a garbage collection: their
 * `ArrayBuffer` is detached (transferred to an empty one). Bytes that do not start their buffer are
 * left alone. A 32 MB body read in 64 KiB chunks otherwise left about 20 MB of copied chunks, and
 * then the body itself, waiting for a collection while its text and parsed value were made
 * (measured).
 */
export function release(bytes: Uint8Array): void {
  const { buffer } = bytes;
  if (buffer instanceof ArrayBuffer && !buffer.detached && bytes.byteOffset === 0) {
    buffer.transfer(0);
  }
}

/** Joins byte chunks into one buffer (no copy for a single chunk); `total` is their length. */
export function concatBytes(
  chunks: readonly Uint8Array[],
  total: number = chunks.reduce((n, c) => n + c.byteLength, 0),
): Uint8Array<ArrayBuffer> {
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
 */
export async function readLimited(
  body: ReadableStream<Uint8Array> | null,
  options: ReadLimitedOptions,
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  const { limit, sizeHint, signal, onProgress, releaseChunks } = options;
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
      const length = value.byteLength;
      if (buffer && total + length <= buffer.byteLength) {
        buffer.set(value, total);
        if (releaseChunks) release(value);
      } else {
        if (buffer) chunks.push(buffer.subarray(0, total)); // the hint was wrong: go on in chunks
        buffer = undefined;
        chunks.push(value);
      }
      total += length;
      onProgress?.(total);
    }
  } catch (err) {
    await reader.cancel().catch(() => {});
    throw err;
  } finally {
    // The lock is never released: the body is spent either way, and releasing a reader costs a
    // TypeError built for its closed promise.
    signal?.removeEventListener("abort", onAbort);
  }
  if (buffer) return total === buffer.byteLength ? buffer : buffer.slice(0, total);
  return concatBytes(chunks, total);
}

/** The 413 for a body past `MAX_BODY_BYTES`. */
export function tooLarge(limit: number): ApiError {
  return new ApiError(413, `The request body is larger than ${limit} bytes`, {
    code: "request_too_large",
  });
}

/** The 408 for a body slower than `BODY_TIMEOUT_MS`. */
export function bodyTimedOut(limits: BodyLimits): ApiError {
  return new ApiError(408, `The request body did not arrive within ${limits.timeoutMs} ms`, {
    type: "invalid_request_error",
    code: "request_timeout",
  });
}

/** The 400 for a body the connection failed to deliver. */
function unreadable(cause: unknown): ApiError {
  return new ApiError(400, "The request body could not be read", { code: "invalid_body", cause });
}

/** The declared length, after refusing one over the limit before reading anything. */
export async function declaredLength(
  request: Request,
  limits: BodyLimits,
): Promise<number | undefined> {
  const declared = contentLength(request.headers);
  if (declared === undefined) return undefined;
  if (declared > limits.maxBytes) {
    await request.body?.cancel().catch(() => {});
    throw tooLarge(limits.maxBytes);
  }
  return declared;
}

/** Takes a body's declared length from the instance's budget, and its bytes as they arrive. */
export function shareGrower(
  limits: BodyLimits,
  declared: number | undefined,
): (total: number) => void {
  if (declared !== undefined) limits.share.grow(declared);
  return (total) => limits.share.grow(total);
}

/**
 * Reads the whole body within `BODY_TIMEOUT_MS`, failing with a 413 past `MAX_BODY_BYTES`. A
 * small body of a declared length is read in one call; any other is read in counted chunks.
 */
export async function readBody(
  request: Request,
  limits: BodyLimits,
): Promise<Uint8Array<ArrayBuffer>> {
  const limit = limits.maxBytes;
  const declared = await declaredLength(request, limits);
  const grow = shareGrower(limits, declared);
  if (declared !== undefined && declared <= WHOLE_READ_BYTES) {
    return await readSmall(request, limits);
  }
  // A slow client is dropped: the body must arrive within BODY_TIMEOUT_MS.
  const timeout = deadline(limits.timeoutMs);
  try {
    // Content-Length only sizes the buffer; the limit is enforced on the bytes that arrive.
    const bytes = await readLimited(request.body, {
      limit,
      sizeHint: declared,
      signal: timeout.signal,
      onProgress: grow,
      releaseChunks: true,
    });
    if (bytes === undefined) throw tooLarge(limit);
    return bytes;
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (timeout.timedOut()) throw bodyTimedOut(limits);
    throw unreadable(err);
  } finally {
    timeout.clear();
  }
}

/**
 * A small body of a declared length, read in one call raced against `BODY_TIMEOUT_MS` (no stream
 * is made for it, which a held stream would keep). The read itself cannot be stopped: after the
 * 408 it holds what arrived, at most its declared length of 64 KiB or less, until the client
 * closes the connection, as the stalled connection's own buffers are held anyway.
 */
function readSmall(request: Request, limits: BodyLimits): Promise<Uint8Array<ArrayBuffer>> {
  return new Promise((resolve, reject) => {
    const cancel = after(limits.timeoutMs, () => reject(bodyTimedOut(limits)));
    request.bytes().then((bytes) => {
      cancel();
      resolve(bytes);
    }, (err) => {
      cancel();
      reject(unreadable(err));
    });
  });
}

const utf8 = new TextDecoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The body as text; a 400 when it is not valid UTF-8. The lenient decoder is tried first: the
 * strict one held three times a 32 MB body at its peak and took three times as long (measured),
 * while the lenient one holds the text alone. Any invalid byte becomes U+FFFD, so only a text
 * that has one needs the strict check.
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
  // Decoded, a large body is freed at once (for a small one, freeing costs more than it saves).
  if (bytes.byteLength > WHOLE_READ_BYTES) release(bytes);
  // Looks for one character that is not white space, rather than trimming a copy of the body.
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
