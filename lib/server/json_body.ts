/**
 * JSON bodies that may carry images of several megabytes (data URIs, `b64_json`). A small value
 * is one `JSON.stringify` string. A value holding large strings is streamed: the large strings
 * are escaped and encoded in 64 KiB slices, so that neither a second full-size JSON string nor its
 * encoded bytes are ever held at once.
 * @module
 */

/** Strings longer than this many characters are written in slices. */
export const STREAMED_STRING_CHARS: number = 1 << 20;
const SLICE_CHARS = 1 << 16;

function isPlain(value: unknown): value is Record<string, unknown> {
  return !!value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype;
}

function hasLargeString(value: unknown, depth = 0): boolean {
  if (typeof value === "string") return value.length > STREAMED_STRING_CHARS;
  if (depth > 8 || !value || typeof value !== "object") return false;
  // Plain loops: this runs on every answer, and callbacks and value arrays cost more than it does.
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (hasLargeString(value[i], depth + 1)) return true;
    return false;
  }
  if (!isPlain(value)) return false;
  for (const key in value) if (hasLargeString(value[key], depth + 1)) return true;
  return false;
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
