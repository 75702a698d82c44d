/**
 * Building responses: JSON and OpenAI-shaped errors. A JSON body that carries images of several
 * megabytes (data URIs, `b64_json`) is streamed: its large strings are escaped and encoded in
 * 64 KiB slices, so that neither a second full-size JSON string nor its encoded bytes are ever
 * held at once.
 * @module
 */
import type { ApiError } from "./errors.ts";

/** Strings longer than this many characters are written in slices. */
export const STREAMED_STRING_CHARS: number = 1 << 20;
const SLICE_CHARS = 1 << 16;

function isPlain(value: unknown): value is Record<string, unknown> {
  return !!value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype;
}

function hasLargeString(value: unknown, depth = 0): boolean {
  if (typeof value === "string") return value.length > STREAMED_STRING_CHARS;
  if (depth > 8 || !(Array.isArray(value) || isPlain(value))) return false;
  return Object.values(value).some((item) => hasLargeString(item, depth + 1));
}

function* pieces(value: unknown, depth: number): Generator<string> {
  if (typeof value === "string" && value.length > STREAMED_STRING_CHARS) {
    yield '"';
    for (let i = 0; i < value.length;) {
      let end = Math.min(i + SLICE_CHARS, value.length);
      // Never split a surrogate pair: each half alone would be escaped as a lone surrogate.
      const last = value.charCodeAt(end - 1);
      if (end < value.length && last >= 0xd800 && last <= 0xdbff) end++;
      yield JSON.stringify(value.slice(i, end)).slice(1, -1);
      i = end;
    }
    yield '"';
  } else if (depth <= 8 && Array.isArray(value) && hasLargeString(value)) {
    yield "[";
    for (const [i, item] of value.entries()) {
      if (i) yield ",";
      // As JSON.stringify does: undefined and functions in arrays become null.
      yield* item === undefined || typeof item === "function" ? ["null"] : pieces(item, depth + 1);
    }
    yield "]";
  } else if (depth <= 8 && isPlain(value) && hasLargeString(value)) {
    let first = true;
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined || typeof item === "function") continue;
      yield `${first ? "{" : ","}${JSON.stringify(key)}:`;
      first = false;
      yield* pieces(item, depth + 1);
    }
    yield first ? "{}" : "}";
  } else {
    yield JSON.stringify(value) ?? "null";
  }
}

/** `value` as a JSON body: a string, or a byte stream when it holds large strings. */
export function jsonBody(value: unknown): string | ReadableStream<Uint8Array> {
  if (!hasLargeString(value)) return JSON.stringify(value);
  const encoder = new TextEncoder();
  return ReadableStream.from(
    (function* () {
      for (const piece of pieces(value, 0)) yield encoder.encode(piece);
    })(),
  );
}

/** The content type of every JSON answer. */
const JSON_TYPE = "application/json; charset=utf-8";

/** A JSON response; one that carries large images (`b64_json`, data URIs) is streamed. */
export function jsonResponse(
  body: unknown,
  status = 200,
  headers: Readonly<Record<string, string>> = {},
): Response {
  return new Response(jsonBody(body), {
    status,
    headers: { ...headers, "content-type": JSON_TYPE },
  });
}

/** The JSON response for an error, with its own headers (`Retry-After`) added. */
export function errorResponse(
  err: ApiError,
  headers: Readonly<Record<string, string>> = {},
): Response {
  return jsonResponse(err.toJSON(), err.status, { ...headers, ...err.headers });
}
