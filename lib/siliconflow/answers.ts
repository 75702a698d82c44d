/**
 * SiliconFlow's answers, read: an error body (JSON `{code,message,data}` or plain text) mapped to
 * the error this proxy answers, and a success body parsed to its image URLs. Pure functions.
 * @module
 */
import { ApiError } from "../server/errors.ts";
import { isHttpUrl, splitDataUri } from "./image_ref.ts";

/** What one successful upstream call produced. */
export interface UpstreamResult {
  /** Image URLs (or data URIs), in order. */
  images: string[];
  /** The seed SiliconFlow reports, if any. */
  seed?: number;
  /** The upstream trace id, if any. */
  traceId?: string;
}

/** A network error's message with its cause ("fetch failed" alone says nothing). */
export function describeNetworkError(err: unknown): string {
  const e = err as { message?: unknown; cause?: { message?: unknown } } | undefined;
  const cause = e?.cause?.message ? `: ${String(e.cause.message)}` : "";
  // Never repeat credentials that a URL in the message may carry.
  return `${String(e?.message ?? err)}${cause}`.replace(/\/\/[^/\s@]*@/g, "//").slice(0, 300);
}

export function withTrace(message: string, traceId?: string): string {
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
  answer: { status: number; text: string; headers: Headers; traceId?: string },
): ApiError {
  const { status, text, headers, traceId } = answer;
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
