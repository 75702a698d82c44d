/**
 * SiliconFlow's answers, read: an error body (JSON `{code,message,data}` or plain text) mapped to
 * the error this proxy answers; an image call's body parsed to its image URLs; `video/submit`'s
 * `{requestId}`, `video/status`'s `{status, position, reason, results}`, and a chat completion's
 * text and tokens (prompt rewriting). Pure functions.
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

/** A 502 for a 200 answer that is not what SiliconFlow documents. */
function bad(message: string, traceId?: string): ApiError {
  return new ApiError(502, withTrace(message, traceId), { code: "upstream_bad_response" });
}

/** A 200 answer's JSON object (a 502 otherwise). */
function object(text: string, traceId?: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw bad("SiliconFlow answered with something that is not JSON", traceId);
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw bad("SiliconFlow's answer is not an object", traceId);
  }
  return parsed as Record<string, unknown>;
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
  const o = object(text, traceId);
  const list = o.images ?? o.data;
  if (!Array.isArray(list)) throw bad("SiliconFlow's answer has no images list", traceId);
  const images: string[] = [];
  for (const item of list) {
    const entry = item && typeof item === "object" ? item as Record<string, unknown> : {};
    if (typeof entry.url === "string" && (isHttpUrl(entry.url) || splitDataUri(entry.url))) {
      images.push(entry.url);
    } else if (typeof entry.b64_json === "string" && entry.b64_json) {
      images.push(`data:image/png;base64,${entry.b64_json}`);
    } else {
      throw bad("SiliconFlow's answer has an image without a URL", traceId);
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
  const seed = typeof o.seed === "number" ? o.seed : undefined;
  return { images, seed, traceId };
}

/** A video job's state at SiliconFlow. */
export interface VideoStatus {
  /** SiliconFlow's word for it. */
  status: "InQueue" | "InProgress" | "Succeed" | "Failed";
  /** Place in the queue, when queued. */
  position?: number;
  /** Why it failed, when it did. */
  reason?: string;
  /** The video's link (valid for 10 minutes), once it succeeded. */
  url?: string;
  /** The seed it used, when reported. */
  seed?: number;
  /** Seconds of inference, when reported. */
  inferenceS?: number;
}

const STATUSES = new Set(["InQueue", "InProgress", "Succeed", "Failed"]);

/** A chat completion's answer: its text and the tokens it cost. */
export interface ChatAnswer {
  text: string;
  promptTokens: number;
  completionTokens: number;
}

/** `choices[0].message.content` and `usage` of a chat completion. A missing text is a fault. */
export function parseChatAnswer(text: string, traceId?: string): ChatAnswer {
  const o = object(text, traceId);
  const choice = Array.isArray(o.choices) ? o.choices[0] : undefined;
  const content = choice && typeof choice === "object" ? choice.message?.content : undefined;
  if (typeof content !== "string") throw bad("SiliconFlow's chat answer has no text", traceId);
  const usage = o.usage && typeof o.usage === "object" ? o.usage as Record<string, unknown> : {};
  const tokens = (v: unknown) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0);
  return {
    text: content,
    promptTokens: tokens(usage.prompt_tokens),
    completionTokens: tokens(usage.completion_tokens),
  };
}

/** `{requestId}` of a submit. */
export function parseVideoSubmit(text: string, traceId?: string): string {
  const id = object(text, traceId).requestId;
  if (typeof id !== "string" || !/^[\w.:-]{1,200}$/.test(id)) {
    throw bad("SiliconFlow's answer to a video submit has no requestId", traceId);
  }
  return id;
}

/** A status answer. A success without a link is a fault. */
export function parseVideoStatus(text: string, traceId?: string): VideoStatus {
  const o = object(text, traceId);
  const status = o.status;
  if (typeof status !== "string" || !STATUSES.has(status)) {
    throw bad("SiliconFlow's video status is not one it documents", traceId);
  }
  const out: VideoStatus = { status: status as VideoStatus["status"] };
  if (typeof o.position === "number" && Number.isFinite(o.position)) out.position = o.position;
  if (typeof o.reason === "string" && o.reason) out.reason = o.reason.slice(0, 500);
  const results = o.results && typeof o.results === "object"
    ? o.results as Record<string, unknown>
    : {};
  const videos = Array.isArray(results.videos) ? results.videos : [];
  const url = (videos[0] as { url?: unknown } | undefined)?.url;
  if (typeof url === "string" && isHttpUrl(url)) out.url = url;
  if (typeof results.seed === "number") out.seed = results.seed;
  const timings = results.timings as { inference?: unknown } | undefined;
  if (typeof timings?.inference === "number") out.inferenceS = timings.inference;
  if (out.status === "Succeed" && !out.url) {
    throw bad("SiliconFlow says the video succeeded but gives no link to it", traceId);
  }
  return out;
}
