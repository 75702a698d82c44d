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
 * `onProgress` hears the running total (and may throw to stop the read).
 */
export async function readLimited(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  onProgress?: (total: number) => void,
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  if (!body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.byteLength;
    // Leaving the loop early cancels the stream.
    if (total > limit) return undefined;
    onProgress?.(total);
    chunks.push(chunk);
  }
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

/**
 * Reads a request body within `BODY_TIMEOUT_MS`: `read` gets the body as a stream counted against
 * `MAX_BODY_BYTES` and the body budget as it arrives (a declared length over the limit is refused
 * before anything is read; a declared length is taken from the budget at once). When the time
 * runs out the body is cancelled and the answer is a 408 (the pipeline then closes the
 * connection). `watch` sees each chunk as it passes.
 */
async function readWithin<T>(
  request: Request,
  limits: BodyLimits,
  read: (body: ReadableStream<Uint8Array>) => Promise<T>,
  watch?: (chunk: Uint8Array) => void,
): Promise<T> {
  const { maxBytes, share } = limits;
  const declared = contentLength(request.headers);
  if (declared !== undefined && declared > maxBytes) throw tooLarge(maxBytes);
  if (declared !== undefined) share.grow(declared);
  const limit = timeLimit(limits.timeoutMs);
  let total = 0;
  let failure: unknown;
  const counter = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      total += chunk.byteLength;
      try {
        if (total > maxBytes) throw tooLarge(maxBytes);
        share.grow(total);
        watch?.(chunk);
      } catch (err) {
        throw failure = err;
      }
      controller.enqueue(chunk);
    },
  });
  const body = request.body ?? ReadableStream.from<Uint8Array>([]);
  try {
    return await read(body.pipeThrough(counter, { signal: limit.signal }));
  } catch (err) {
    if (failure !== undefined) throw failure;
    if (limit.timedOut()) throw bodyTimedOut(limits);
    throw err instanceof ApiError ? err : unreadable(err);
  } finally {
    limit.clear();
  }
}

/** Reads the whole request body (see {@link readWithin} for its limits). */
export function readBody(request: Request, limits: BodyLimits): Promise<Uint8Array<ArrayBuffer>> {
  return readWithin(request, limits, (body) => new Response(body).bytes());
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

/**
 * The most parts a multipart body may have. A body of many thousands of tiny parts is refused
 * while it streams, at the part past the limit.
 */
export const MAX_MULTIPART_PARTS = 100;

function invalidMultipart(why: string): ApiError {
  return new ApiError(400, `The multipart body could not be parsed: ${why}`, {
    param: "body",
    code: "invalid_multipart",
  });
}

/**
 * Counts the part delimiters of a multipart body as it streams by (a delimiter may be cut between
 * two chunks), and throws past {@link MAX_MULTIPART_PARTS} parts.
 */
function partCounter(boundary: string): (chunk: Uint8Array) => void {
  const delimiter = `--${boundary}`;
  const latin1 = new TextDecoder("latin1");
  let tail = "";
  let seen = 0;
  return (chunk) => {
    const text = tail + latin1.decode(chunk);
    for (let at = text.indexOf(delimiter); at !== -1; at = text.indexOf(delimiter, at + 1)) {
      // The closing delimiter is one more than the parts.
      if (++seen > MAX_MULTIPART_PARTS + 1) {
        throw new ApiError(400, `The multipart body has more than ${MAX_MULTIPART_PARTS} parts`, {
          param: "body",
          code: "too_many_parts",
        });
      }
    }
    // Shorter than a delimiter, the tail never holds one that was counted.
    tail = text.slice(Math.max(0, text.length - delimiter.length + 1));
  };
}

/**
 * Reads a multipart body (see {@link readWithin} for its limits) with the platform's `formData()`,
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
  // A failure of the body itself (too large, too slow) is told by readWithin; the rest is the form's.
  const form = await readWithin(
    request,
    limits,
    (body) =>
      new Response(body, { headers: { "content-type": type } }).formData().catch((err) => {
        throw invalidMultipart((err as Error).message);
      }),
    partCounter(boundary[1] ?? boundary[2]),
  );
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
