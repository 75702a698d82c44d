/**
 * OpenAI chat completion answers: the non-streamed `chat.completion` object and the streaming
 * encoder, from {@link ChatStreamEvent}s to server-sent event frames.
 * @module
 */
import type { ApiError } from "../server/errors.ts";
import type { EventEncoder } from "../server/event_stream.ts";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChunkDelta,
  ImageUrlPart,
  Usage,
} from "./types.ts";

export type { Usage } from "./types.ts";

/** The usage reported for an image generation. */
export const ZERO_USAGE: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };

/** What a streamed answer is made of, in order. */
export type ChatStreamEvent =
  | { kind: "role" }
  | { kind: "keepalive" }
  | { kind: "reasoning"; text: string }
  | { kind: "content"; text: string; images?: ImageUrlPart[] }
  | { kind: "finish" }
  | { kind: "usage"; usage: Usage }
  | { kind: "error"; error: ApiError };

/** Identity shared by all chunks of one answer. */
export interface CompletionMeta {
  /** `chatcmpl-…`. */
  id: string;
  /** Unix seconds. */
  created: number;
  /** The model id echoed back. */
  model: string;
}

/** A non-streamed `chat.completion`; `images` in OpenRouter's shape when they were asked for. */
export function toChatCompletion(
  meta: CompletionMeta,
  content: string,
  images?: ImageUrlPart[],
): ChatCompletion {
  return {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    choices: [{
      index: 0,
      message: { role: "assistant", content, refusal: null, ...(images ? { images } : {}) },
      finish_reason: "stop",
      logprobs: null,
    }],
    usage: ZERO_USAGE,
  } satisfies ChatCompletion;
}

/** One `chat.completion.chunk`: one choice with a delta, or (with `usage`) the closing chunk. */
export function toChatChunk(
  meta: CompletionMeta,
  part: { delta: ChunkDelta; finish?: "stop" } | { usage: Usage },
  includeUsage: boolean,
): ChatCompletionChunk {
  const chunk: ChatCompletionChunk = {
    id: meta.id,
    object: "chat.completion.chunk",
    created: meta.created,
    model: meta.model,
    choices: "usage" in part
      ? []
      : [{ index: 0, delta: part.delta, finish_reason: part.finish ?? null, logprobs: null }],
  };
  if ("usage" in part) chunk.usage = part.usage;
  else if (includeUsage) chunk.usage = null;
  return chunk;
}

/**
 * One SSE frame. Written by hand rather than with std's `ServerSentEventStream`, because that
 * writes `data:x` without the space, and some hand-rolled clients match `data: [DONE]` literally.
 */
function frame(data: string): string {
  return `data: ${data}\n\n`;
}

/**
 * Encodes chat stream events as OpenAI server-sent events. Keep-alives are complete chunks with
 * an empty content delta: comment frames and empty `data:` frames break SDKs that parse every
 * frame as JSON. After an error event the stream ends without `[DONE]`.
 */
export class ChatChunkEncoder implements EventEncoder<ChatStreamEvent> {
  #meta: CompletionMeta;
  #includeUsage: boolean;
  #failed = false;

  /** Creates an encoder for one answer. */
  constructor(meta: CompletionMeta, includeUsage: boolean) {
    this.#meta = meta;
    this.#includeUsage = includeUsage;
  }

  #chunk(delta: ChunkDelta, finish?: "stop"): string {
    return frame(JSON.stringify(toChatChunk(this.#meta, { delta, finish }, this.#includeUsage)));
  }

  /** The frame of one event, if it has one. */
  encode(event: ChatStreamEvent): string | undefined {
    if (this.#failed) return undefined;
    switch (event.kind) {
      case "role":
        return this.#chunk({ role: "assistant", content: "" });
      case "keepalive":
        return this.#chunk({ content: "" });
      case "reasoning":
        return this.#chunk({ reasoning_content: event.text });
      case "content":
        return this.#chunk(
          event.images ? { content: event.text, images: event.images } : { content: event.text },
        );
      case "finish":
        return this.#chunk({}, "stop");
      case "usage":
        if (!this.#includeUsage) return undefined;
        return frame(JSON.stringify(toChatChunk(this.#meta, { usage: event.usage }, true)));
      case "error":
        this.#failed = true;
        return frame(JSON.stringify(event.error.toJSON()));
    }
  }

  /** `[DONE]`, unless the answer failed. */
  end(): string | undefined {
    return this.#failed ? undefined : frame("[DONE]");
  }
}
