/**
 * The OpenAI answer shapes this server builds, declared here (importing them from the `openai`
 * package would pull the SDK into the published graph). Builders use `satisfies`, so a typo in a
 * field name is a compile error.
 * @module
 */

/** Token usage; images have no tokens, so the counts are zero. */
export interface Usage {
  /** Prompt tokens. */
  prompt_tokens: number;
  /** Completion tokens. */
  completion_tokens: number;
  /** Both. */
  total_tokens: number;
}

/** A non-streamed `chat.completion`. */
export interface ChatCompletion {
  /** `chatcmpl-…`. */
  id: string;
  /** Always `chat.completion`. */
  object: "chat.completion";
  /** Unix seconds. */
  created: number;
  /** The model as the client named it. */
  model: string;
  /** The one answer. */
  choices: {
    index: number;
    message: { role: "assistant"; content: string; refusal: null; images?: ImageUrlPart[] };
    finish_reason: "stop";
    logprobs: null;
  }[];
  /** Zero usage. */
  usage: Usage;
}

/** An image in OpenRouter's chat shape (`message.images[]`, `delta.images`). */
export interface ImageUrlPart {
  type: "image_url";
  image_url: { url: string };
}

/** What a streamed chunk's delta may carry. */
export interface ChunkDelta {
  /** Only in the first chunk. */
  role?: "assistant";
  /** Answer text (the markdown images). */
  content?: string;
  /** Progress lines, where asked for. */
  reasoning_content?: string;
  /** The images, when `modalities` asked for them (OpenRouter's shape). */
  images?: ImageUrlPart[];
}

/** One `chat.completion.chunk`. */
export interface ChatCompletionChunk {
  /** The same id in every chunk of an answer. */
  id: string;
  /** Always `chat.completion.chunk`. */
  object: "chat.completion.chunk";
  /** Unix seconds. */
  created: number;
  /** The model as the client named it. */
  model: string;
  /** One choice, or none in the closing usage chunk. */
  choices: {
    index: number;
    delta: ChunkDelta;
    finish_reason: "stop" | null;
    logprobs: null;
  }[];
  /** `null` in every chunk but the usage chunk, when usage was asked for. */
  usage?: Usage | null;
}

/** One image of an Images API answer; `revised_prompt` when the prompt was rewritten. */
export type ImageData = ({ url: string } | { b64_json: string }) & { revised_prompt?: string };

/** The answer of `/v1/images/generations` and `/v1/images/edits`. */
export interface ImagesResponse {
  /** Unix seconds. */
  created: number;
  /** The images, in order. */
  data: ImageData[];
  /** When only some of the images could be made (not an OpenAI field; clients ignore it). */
  partial_failure?: { failed: number; requested: number; message: string };
  /** The prompt rewrite's tokens (OpenAI's gpt-image usage shape), when one ran. */
  usage?: {
    input_tokens: number;
    input_tokens_details: { text_tokens: number; image_tokens: number };
    output_tokens: number;
    total_tokens: number;
  };
  /** Set when rewriting was asked for and failed: the original prompt was used. */
  prompt_rewrite?: { status: "failed"; message: string };
}

/** An OpenAI model object. */
export interface ModelObject {
  /** Model id. */
  id: string;
  /** Always `model`. */
  object: "model";
  /** A fixed timestamp (the registry has no real dates). */
  created: number;
  /** Owner. */
  owned_by: string;
}

/** An `output_text` content part of a Responses API message. */
export interface OutputText {
  /** Always `output_text`. */
  type: "output_text";
  /** The text (markdown images). */
  text: string;
  /** None. */
  annotations: never[];
}

/** An output item of a Responses API answer. */
export type ResponseOutputItem =
  | {
    type: "message";
    id: string;
    status: "in_progress" | "completed";
    role: "assistant";
    content: OutputText[];
  }
  | {
    type: "image_generation_call";
    id: string;
    status: "in_progress" | "completed";
    result: string | null;
    /** The prompt as rewritten, when rewriting was asked for (OpenAI's field). */
    revised_prompt?: string;
  };

/** A Responses API `response` object. */
export interface ResponseObject {
  /** `resp_…`. */
  id: string;
  /** Always `response`. */
  object: "response";
  /** Unix seconds. */
  created_at: number;
  /** Where it stands. */
  status: "in_progress" | "completed" | "failed";
  /** The model as the client named it. */
  model: string;
  /** The output items. */
  output: ResponseOutputItem[];
  /** Why it failed, when it did. */
  error: { code: string; message: string } | null;
  /** Never incomplete. */
  incomplete_details: null;
  /** Not used for images. */
  instructions: null;
  /** Empty. */
  metadata: Record<string, string>;
  /** False. */
  parallel_tool_calls: false;
  /** Not used. */
  temperature: null;
  /** `auto`. */
  tool_choice: "auto";
  /** The tools as sent. */
  tools: unknown[];
  /** Not used. */
  top_p: null;
  /** No tokens. */
  usage: {
    input_tokens: number;
    input_tokens_details: { cached_tokens: number };
    output_tokens: number;
    output_tokens_details: { reasoning_tokens: number };
    total_tokens: number;
  } | null;
}
