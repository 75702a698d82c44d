/**
 * SiliconFlow's answers besides the images', read: `video/submit`'s `{requestId}`,
 * `video/status`'s `{status, position, reason, results}`, and a chat completion's text and tokens
 * (prompt rewriting). Pure functions.
 * @module
 */
import { ApiError } from "../server/errors.ts";
import { withTrace } from "./answers.ts";
import { isHttpUrl } from "./image_ref.ts";

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

function bad(message: string, traceId?: string): ApiError {
  return new ApiError(502, withTrace(message, traceId), { code: "upstream_bad_response" });
}

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
