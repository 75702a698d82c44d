/**
 * Reading bodies whole under a byte limit: request bodies (413 past `MAX_BODY_BYTES`, 408 after
 * `BODY_TIMEOUT_MS`, their bytes taken from the instance's body budget, 503 past it) as bytes,
 * JSON or a multipart form, and fetched bodies (SiliconFlow's answers, image downloads).
 * @module
 */
import { ApiError, notAnObject } from "./errors.ts";
import type { BodyShare } from "./body_budget.ts";
import { timeLimit } from "./time_limit.ts";
import { isJsonObject } from "./values.ts";

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
 * Reads a whole stream, counting its bytes as they arrive: undefined once it passes `limit`.
 * `onProgress` hears the running total (and may throw to stop the read); when `signal` aborts,
 * the stream is cancelled and the signal's reason thrown.
 */
export async function readLimited(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  options: { onProgress?: (total: number) => void; signal?: AbortSignal } = {},
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  if (!body) return new Uint8Array();
  const { onProgress, signal } = options;
  const reader = body.getReader();
  const cancel = () => reader.cancel(signal?.reason).catch(() => {});
  signal?.addEventListener("abort", cancel, { once: true });
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      signal?.throwIfAborted();
      if (done) return concatBytes(chunks, total);
      total += value.byteLength;
      if (total > limit) return undefined;
      onProgress?.(total);
      chunks.push(value);
    }
  } finally {
    signal?.removeEventListener("abort", cancel);
    await reader.cancel().catch(() => {});
  }
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

/** The 413 for a body past `MAX_BODY_BYTES`. */
export function tooLarge(limit: number): ApiError {
  return new ApiError(413, `The request body is larger than ${limit} bytes`, {
    code: "request_too_large",
  });
}

/** The 408 for a body slower than `BODY_TIMEOUT_MS`. */
function bodyTimedOut(limits: BodyLimits): ApiError {
  return new ApiError(408, `The request body did not arrive within ${limits.timeoutMs} ms`, {
    type: "invalid_request_error",
    code: "request_timeout",
  });
}

/** The 400 for a body the connection failed to deliver. */
function unreadable(cause: unknown): ApiError {
  return new ApiError(400, "The request body could not be read", { code: "invalid_body", cause });
}

/** `work`, or the signal's reason once it aborts (the work itself goes on, unheard). */
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    work.then(resolve, reject);
  });
}

/**
 * Reads the whole request body within `BODY_TIMEOUT_MS` (408), up to `MAX_BODY_BYTES` (413), its
 * bytes taken from the body budget (503). A body of a declared length is refused before anything
 * is read when it is too long, is taken from the budget at once, and is read in one call (the
 * HTTP layer holds it to that length; after a 408 the pipeline closes the connection, which ends
 * the read). A chunked body is counted as it arrives.
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
    const bytes = declared !== undefined
      ? await unlessAborted(request.bytes(), limit.signal)
      : await readLimited(request.body, maxBytes, {
        onProgress: (total) => share.grow(total),
        signal: limit.signal,
      });
    if (!bytes) throw tooLarge(maxBytes);
    return bytes;
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (limit.timedOut()) throw bodyTimedOut(limits);
    throw unreadable(err);
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
  const text = decodeUtf8(await readBody(request, limits));
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

/** One part of a multipart body. */
export interface MultipartPart {
  /** Its field name. */
  name: string;
  /** The file name, for a file. */
  filename?: string;
  /** Its `Content-Type`, for a file that said one. */
  type?: string;
  /** Its bytes (a text field's in UTF-8). */
  bytes: Uint8Array<ArrayBuffer>;
}

/** The most parts a multipart body may have. */
export const MAX_MULTIPART_PARTS = 100;

function invalidMultipart(why: string): ApiError {
  return new ApiError(400, `The multipart body could not be parsed: ${why}`, {
    param: "body",
    code: "invalid_multipart",
  });
}

/** Whether `bytes` hold more than `max` times `delimiter` (a linear scan). */
function holdsMore(bytes: Uint8Array, delimiter: Uint8Array, max: number): boolean {
  let count = 0;
  for (let at = bytes.indexOf(delimiter[0]); at !== -1; at = bytes.indexOf(delimiter[0], at + 1)) {
    let i = 1;
    while (i < delimiter.length && bytes[at + i] === delimiter[i]) i++;
    if (i === delimiter.length && ++count > max) return true;
  }
  return false;
}

/**
 * Reads a multipart body (under the limits of {@link readBody}) with the platform's `formData()`,
 * at most {@link MAX_MULTIPART_PARTS} parts.
 */
export async function readMultipart(
  request: Request,
  limits: BodyLimits,
): Promise<MultipartPart[]> {
  const type = request.headers.get("content-type") ?? "";
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type);
  if (!boundary) {
    await request.body?.cancel().catch(() => {});
    throw invalidMultipart("no boundary in Content-Type");
  }
  const bytes = await readBody(request, limits);
  // Each part starts with the delimiter, and the closing one is one more.
  const delimiter = new TextEncoder().encode(`--${boundary[1] ?? boundary[2]}`);
  if (holdsMore(bytes, delimiter, MAX_MULTIPART_PARTS + 1)) {
    throw new ApiError(400, `The multipart body has more than ${MAX_MULTIPART_PARTS} parts`, {
      param: "body",
      code: "too_many_parts",
    });
  }
  const form = await new Response(bytes, { headers: { "content-type": type } }).formData()
    .catch((err) => {
      throw invalidMultipart((err as Error).message);
    });
  const parts: MultipartPart[] = [];
  for (const [name, value] of form) {
    parts.push(
      typeof value === "string" ? { name, bytes: new TextEncoder().encode(value) } : {
        name,
        filename: value.name,
        ...(value.type ? { type: value.type } : {}),
        bytes: await value.bytes(),
      },
    );
  }
  return parts;
}
