/**
 * Multipart bodies (`/v1/images/edits`), parsed as they arrive under the same limits as every
 * body: 413 past `MAX_BODY_BYTES`, 408 after `BODY_TIMEOUT_MS`, at most
 * {@link MAX_MULTIPART_PARTS} parts, and the bytes taken from the body budget as they arrive.
 *
 * The platform's `formData()` buffers the whole body, then copies each file into a `File`, and
 * reading a file back copies it again: three times the files before any is encoded. Here each
 * part's bytes are kept once, as they arrive, and the search for the next boundary looks at each
 * byte a bounded number of times.
 * @module
 */
import { ApiError } from "./errors.ts";
import {
  type BodyLimits,
  bodyTimedOut,
  concatBytes,
  declaredLength,
  release,
  shareGrower,
  tooLarge,
} from "./body.ts";
import { after } from "./deadline.ts";

/** One part of a multipart body. */
export interface MultipartPart {
  /** Its field name. */
  name: string;
  /** The file name, for a file (a part whose `Content-Disposition` has one, even empty). */
  filename?: string;
  /** Its `Content-Type`, if it said one. */
  type?: string;
  /** Its bytes. */
  bytes: Uint8Array<ArrayBuffer>;
}

/**
 * The most parts a multipart body may have. A body of many thousands of tiny parts is refused
 * while it streams, at the part past the limit.
 */
export const MAX_MULTIPART_PARTS = 100;

/** The most bytes of one part's headers. */
const MAX_HEADER_BYTES = 16 * 1024;

const ascii = new TextEncoder();
// Names and file names are UTF-8 on the wire (browsers and the platform send them so).
const utf8 = new TextDecoder();
const CRLF_CRLF = ascii.encode("\r\n\r\n");

function tooManyParts(): ApiError {
  return new ApiError(
    400,
    `The multipart body has more than ${MAX_MULTIPART_PARTS} parts`,
    { param: "body", code: "too_many_parts" },
  );
}

function invalidMultipart(why: string): ApiError {
  return new ApiError(400, `The multipart body could not be parsed: ${why}`, {
    param: "body",
    code: "invalid_multipart",
  });
}

/** Where `pattern` starts in `data` at or after `from`, or -1. */
function indexOfBytes(data: Uint8Array, pattern: Uint8Array, from = 0): number {
  const first = pattern[0];
  const last = data.length - pattern.length;
  for (
    let at = data.indexOf(first, from);
    at !== -1 && at <= last;
    at = data.indexOf(first, at + 1)
  ) {
    let i = 1;
    while (i < pattern.length && data[at + i] === pattern[i]) i++;
    if (i === pattern.length) return at;
  }
  return -1;
}

/** A `Content-Disposition` parameter (quoted or not). */
function dispositionParam(header: string, param: string): string | undefined {
  const m = new RegExp(`(?:^|;)\\s*${param}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]*))`, "i")
    .exec(header);
  if (!m) return undefined;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2];
}

/** The parser's state across chunks. */
class MultipartParser {
  #dashBoundary: Uint8Array;
  #delimiter: Uint8Array;
  #state: "preamble" | "headers" | "body" | "done" = "preamble";
  #tail: Uint8Array = new Uint8Array();
  #part: Omit<MultipartPart, "bytes"> | undefined;
  #chunks: Uint8Array[] = [];
  #started = 0;
  readonly parts: MultipartPart[] = [];

  constructor(boundary: string) {
    this.#dashBoundary = ascii.encode(`--${boundary}`);
    this.#delimiter = ascii.encode(`\r\n--${boundary}`);
  }

  get done(): boolean {
    return this.#state === "done";
  }

  /** Takes the next bytes of the body. */
  feed(chunk: Uint8Array): void {
    if (this.#state === "done") return; // the epilogue is ignored
    let data = chunk;
    const tail = this.#tail;
    this.#tail = new Uint8Array();
    const span = this.#delimiter.length + 2;
    if (tail.length && this.#state === "body" && chunk.length >= span) {
      // Inside a part only the seam is joined, not the whole chunk: when no delimiter starts in
      // the tail, the tail is the part's and the chunk is parsed as it came (no copy of it).
      const at = indexOfBytes(concatBytes([tail, chunk.subarray(0, span)]), this.#delimiter);
      if (at === -1 || at >= tail.length) this.#chunks.push(tail);
      else data = concatBytes([tail, chunk]);
    } else if (tail.length) {
      data = concatBytes([tail, chunk]);
    }
    while (data.length) {
      const rest = this.#step(data);
      if (rest === undefined) return;
      data = rest;
    }
  }

  /** Parses what it can; the bytes left to parse, or undefined when it needs more. */
  #step(data: Uint8Array): Uint8Array | undefined {
    switch (this.#state) {
      case "preamble": {
        const at = indexOfBytes(data, this.#dashBoundary);
        const end = at + this.#dashBoundary.length;
        if (at === -1 || end + 2 > data.length) {
          if (data.length > MAX_HEADER_BYTES) throw invalidMultipart("no opening boundary");
          this.#tail = data;
          return undefined;
        }
        return this.#afterBoundary(data, end);
      }
      case "headers": {
        const at = indexOfBytes(data, CRLF_CRLF);
        if (at === -1) {
          if (data.length > MAX_HEADER_BYTES) {
            throw invalidMultipart("a part's headers are too long");
          }
          this.#tail = data;
          return undefined;
        }
        this.#part = this.#headers(utf8.decode(data.subarray(0, at)));
        this.#chunks = [];
        this.#state = "body";
        return data.subarray(at + CRLF_CRLF.length);
      }
      case "body": {
        const at = indexOfBytes(data, this.#delimiter);
        if (at === -1 || at + this.#delimiter.length + 2 > data.length) {
          // All but what could be the start of the delimiter belongs to the part.
          const keep = at === -1
            ? Math.min(data.length, this.#delimiter.length + 1)
            : data.length - at;
          if (data.length > keep) this.#chunks.push(data.subarray(0, data.length - keep));
          this.#tail = data.subarray(data.length - keep);
          return undefined;
        }
        if (at > 0) this.#chunks.push(data.subarray(0, at));
        // One copy of the part, apart from the larger chunks it arrived in.
        const chunks = this.#chunks;
        const bytes = chunks.length === 1 ? chunks[0].slice() : concatBytes(chunks);
        this.#chunks = [];
        // The request's chunks are the parser's to spend: those copied whole are freed now, not
        // at a collection (the one still being parsed is kept).
        for (const chunk of chunks) if (chunk.buffer !== data.buffer) release(chunk);
        this.parts.push({ ...this.#part!, bytes });
        return this.#afterBoundary(data, at + this.#delimiter.length);
      }
      default:
        return undefined;
    }
  }

  /** After a boundary: `--` ends the body, a line break starts a part. */
  #afterBoundary(data: Uint8Array, end: number): Uint8Array {
    if (data[end] === 0x2d && data[end + 1] === 0x2d) {
      this.#state = "done";
      return new Uint8Array();
    }
    // Linear white space may pad the boundary line before its line break.
    let at = end;
    while (at < data.length && (data[at] === 0x20 || data[at] === 0x09)) at++;
    if (at + 2 > data.length) {
      this.#tail = data.subarray(end - this.#dashBoundary.length);
      this.#state = "preamble";
      return new Uint8Array();
    }
    if (data[at] !== 0x0d || data[at + 1] !== 0x0a) throw invalidMultipart("a malformed boundary");
    if (++this.#started > MAX_MULTIPART_PARTS) throw tooManyParts();
    this.#state = "headers";
    return data.subarray(at + 2);
  }

  #headers(text: string): Omit<MultipartPart, "bytes"> {
    let disposition: string | undefined;
    let type: string | undefined;
    for (const line of text.split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === "content-disposition") disposition = value;
      else if (name === "content-type") type = value;
    }
    if (!disposition || !/^form-data\b/i.test(disposition)) {
      throw invalidMultipart("a part without Content-Disposition: form-data");
    }
    const name = dispositionParam(disposition, "name");
    if (name === undefined) throw invalidMultipart("a part without a name");
    const filename = dispositionParam(disposition, "filename");
    return {
      name,
      ...(filename !== undefined ? { filename } : {}),
      ...(type ? { type } : {}),
    };
  }
}

/**
 * Parses a multipart body straight from the connection, counting bytes as they arrive (413 past
 * `MAX_BODY_BYTES`) and giving up after `BODY_TIMEOUT_MS` (408), without buffering it first.
 */
export async function readMultipart(
  request: Request,
  limits: BodyLimits,
): Promise<MultipartPart[]> {
  const grow = shareGrower(limits, await declaredLength(request, limits));
  const limit = limits.maxBytes;
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(
    request.headers.get("content-type") ?? "",
  );
  if (!boundary) {
    await request.body?.cancel().catch(() => {});
    throw invalidMultipart("no boundary in Content-Type");
  }
  const parser = new MultipartParser(boundary[1] ?? boundary[2]);
  const reader = request.body?.getReader();
  if (!reader) throw invalidMultipart("no body");
  let timedOut = false;
  // The time limit cancels the read, which ends the pending read() at once.
  const stopTimer = after(limits.timeoutMs, () => {
    timedOut = true;
    reader.cancel().catch(() => {});
  });
  let total = 0;
  try {
    // Read to the end (the epilogue after the closing boundary is counted and ignored).
    while (true) {
      const { done, value } = await reader.read();
      if (timedOut) throw bodyTimedOut(limits);
      if (done) break;
      total += value.byteLength;
      if (total > limit) throw tooLarge(limit);
      grow(total);
      parser.feed(value);
    }
    if (!parser.done) throw invalidMultipart("the body ended before its closing boundary");
    return parser.parts;
  } catch (err) {
    await reader.cancel().catch(() => {});
    if (timedOut) throw bodyTimedOut(limits);
    if (err instanceof ApiError) throw err;
    throw invalidMultipart("the body could not be read");
  } finally {
    stopTimer();
  }
}
