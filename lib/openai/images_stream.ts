/**
 * The Images API's streaming answer (`stream: true`): one `image_generation.completed` (or
 * `image_edit.completed`) event per image, with its `b64_json`, as OpenAI sends them. SiliconFlow
 * makes no partial images, so `partial_images` gets none. SSE comments keep the connection alive
 * meanwhile (the SDKs skip them); a failure is an `error` event, which the SDKs raise.
 * @module
 */
import type { ApiError } from "../server/errors.ts";
import type { EventEncoder } from "../server/event_stream.ts";

/** The usage OpenAI reports; images from SiliconFlow have no tokens. */
const NO_TOKENS = {
  input_tokens: 0,
  output_tokens: 0,
  total_tokens: 0,
  input_tokens_details: { image_tokens: 0, text_tokens: 0 },
};

/** One completed image, as OpenAI streams it. */
export interface ImageCompletedEvent {
  /** `image_generation.completed` or `image_edit.completed`. */
  type: "image_generation.completed" | "image_edit.completed";
  /** The image, base64. */
  b64_json: string;
  /** Unix seconds. */
  created_at: number;
  /** `WxH`, or `auto` where the model takes no size. */
  size: string;
  /** Always `auto`: SiliconFlow has no quality setting. */
  quality: "auto";
  /** Always `auto`. */
  background: "auto";
  /** `png`, `jpeg` or `webp`, from the image's type. */
  output_format: string;
  /** No tokens. */
  usage: typeof NO_TOKENS;
  /** The prompt as rewritten, when rewriting was asked for. */
  revised_prompt?: string;
}

/** What an image stream is made of. */
export type ImageStreamEvent =
  | { kind: "keepalive" }
  | { kind: "image"; event: ImageCompletedEvent }
  | { kind: "error"; error: ApiError };

/** Builds one completed-image event. */
export function imageCompleted(
  endpoint: "generations" | "edits",
  image: { base64: string; contentType: string },
  meta: { created: number; size?: string; revised?: string },
): ImageCompletedEvent {
  return {
    type: endpoint === "edits" ? "image_edit.completed" : "image_generation.completed",
    b64_json: image.base64,
    created_at: meta.created,
    size: meta.size ?? "auto",
    quality: "auto",
    background: "auto",
    output_format: image.contentType.replace(/^image\//, "") || "png",
    usage: NO_TOKENS,
    ...(meta.revised ? { revised_prompt: meta.revised } : {}),
  } satisfies ImageCompletedEvent;
}

/** Encodes image stream events as server-sent events. */
export const imageEventEncoder: EventEncoder<ImageStreamEvent> = {
  encode(event) {
    switch (event.kind) {
      case "keepalive":
        return ": keepalive\n\n";
      case "image":
        return `event: ${event.event.type}\ndata: ${JSON.stringify(event.event)}\n\n`;
      case "error":
        return `event: error\ndata: ${
          JSON.stringify({ type: "error", ...event.error.toJSON() })
        }\n\n`;
    }
  },
};
