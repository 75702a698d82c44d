/**
 * Reading request bodies: whole bodies up to a byte limit and within a time limit (413 and 408),
 * JSON, and multipart parsed from a counted stream. Each body's bytes are taken from the
 * instance's body budget (503 past it). Functions of the request and its limits; no context.
 * @module
 */
import { ApiError, notAnObject } from "./errors.ts";
import type { BodyShare } from "./body_budget.ts";
import { deadline } from "./deadline.ts";
import { isJsonObject } from "./values.ts";

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
  const { limit, sizeHint, signal, onProgress } = options;
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
  return concatBytes(chunks, total);
}

function tooLarge(limit: number): ApiError {
  return new ApiError(413, `The request body is larger than ${limit} bytes`, {
    code: "request_too_large",
  });
}

function bodyTimedOut(limits: BodyLimits): ApiError {
  return new ApiError(408, `The request body did not arrive within ${limits.timeoutMs} ms`, {
    type: "invalid_request_error",
    code: "request_timeout",
  });
}

/** The declared length, after refusing one over the limit before reading anything. */
async function declaredLength(
  request: Request,
  limits: BodyLimits,
): Promise<number | undefined> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (!Number.isSafeInteger(declared) || declared < 0) return undefined;
  if (declared > limits.maxBytes) {
    await request.body?.cancel().catch(() => {});
    throw tooLarge(limits.maxBytes);
  }
  return declared;
}

/** Takes a body's declared length from the instance's budget, and its bytes as they arrive. */
function shareGrower(limits: BodyLimits, declared: number | undefined): (total: number) => void {
  if (declared !== undefined) limits.share.grow(declared);
  return (total) => limits.share.grow(total);
}

/** Reads the whole body within `BODY_TIMEOUT_MS`, failing with a 413 past `MAX_BODY_BYTES`. */
export async function readBody(
  request: Request,
  limits: BodyLimits,
): Promise<Uint8Array<ArrayBuffer>> {
  const limit = limits.maxBytes;
  const declared = await declaredLength(request, limits);
  const grow = shareGrower(limits, declared);
  // A slow client is dropped: the body must arrive within BODY_TIMEOUT_MS.
  const timeout = deadline(limits.timeoutMs);
  try {
    // Content-Length only sizes the buffer; the limit is enforced on the bytes that arrive.
    const bytes = await readLimited(request.body, {
      limit,
      sizeHint: declared,
      signal: timeout.signal,
      onProgress: grow,
    });
    if (bytes === undefined) throw tooLarge(limit);
    return bytes;
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (timeout.timedOut()) throw bodyTimedOut(limits);
    throw new ApiError(400, "The request body could not be read", {
      code: "invalid_body",
      cause: err,
    });
  } finally {
    timeout.clear();
  }
}

/**
 * Parses a multipart body straight from the connection, counting bytes as they arrive (413 past
 * `MAX_BODY_BYTES`) and giving up after `BODY_TIMEOUT_MS` (408), without buffering it first.
 */
export async function readFormData(request: Request, limits: BodyLimits): Promise<FormData> {
  const grow = shareGrower(limits, await declaredLength(request, limits));
  const limit = limits.maxBytes;
  const countParts = partCounter(request.headers.get("content-type") ?? "");
  let total = 0;
  let failure: ApiError | undefined;
  const source = request.body?.getReader();
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
  const timer = setTimeout(() => fail(bodyTimedOut(limits)), limits.timeoutMs);
  try {
    return await new Response(body, {
      headers: { "content-type": request.headers.get("content-type") ?? "" },
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
export async function readJson(request: Request, limits: BodyLimits): Promise<unknown> {
  const bytes = await readBody(request, limits);
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
export async function readJsonObject(
  request: Request,
  limits: BodyLimits,
): Promise<Record<string, unknown>> {
  const body = await readJson(request, limits);
  if (!isJsonObject(body)) throw notAnObject();
  return body;
}
