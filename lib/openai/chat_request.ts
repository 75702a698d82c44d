/**
 * Turns an OpenAI chat completion request into what the generator needs: the prompt (the last
 * user message's text), the input images (its `image_url` parts), and the loose body fields.
 * @module
 */
import { z } from "zod";
import { invalidParam, notAnObject } from "../server/errors.ts";
import { zodError } from "../generation/zod_error.ts";
import { isJsonObject } from "../values.ts";
import { checkImageRef } from "../siliconflow/image_ref.ts";

/** A chat request reduced to what image generation needs. */
export interface ChatRequest {
  /** The requested model id or alias. */
  model: string;
  /** Text of the last user message, parts joined by newlines. */
  prompt: string;
  /** `image_url` parts of the last user message, in order. */
  images: string[];
  /** Whether to answer as a server-sent event stream. */
  stream: boolean;
  /** `stream_options.include_usage`. */
  includeUsage: boolean;
  /** Index of the last user message in `messages`. */
  userIndex: number;
  /** All messages, as sent. */
  messages: ChatMessage[];
  /** The whole body, for the per-model parameters. */
  fields: Record<string, unknown>;
  /** OpenRouter's `modalities` with `"image"`: the images go in `message.images[]` too. */
  imagesOut: boolean;
}

const Part = z.looseObject({ type: z.string() });
const Message = z.looseObject({
  role: z.string(),
  content: z.union([z.string(), z.array(Part)]).nullish(),
});
/** One chat message as the schema accepts it. */
export type ChatMessage = z.infer<typeof Message>;

const Body = z.looseObject({
  model: z.string({ error: "model is required: the id of an image model, e.g. Qwen/Qwen-Image" })
    .min(1, "model is required: the id of an image model, e.g. Qwen/Qwen-Image"),
  messages: z.array(Message, {
    error: "messages is required: the conversation, as a list of {role, content}",
  }).min(1, "messages must not be empty"),
  stream: z.boolean({ error: "stream must be true or false" }).nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
});

/** The URL of an `image_url` part, accepting both `{url}` and a bare string. */
function imageUrlOf(part: Record<string, unknown>, param: string): string {
  const raw = part.image_url;
  const url = typeof raw === "string"
    ? raw
    : raw && typeof raw === "object"
    ? (raw as Record<string, unknown>).url
    : undefined;
  return checkImageRef(url, `${param}.image_url`);
}

/** The text and images of one message's content. */
export function messageParts(
  content: ChatMessage["content"],
  param: string,
): { text: string; images: string[] } {
  if (typeof content === "string") return { text: content, images: [] };
  const texts: string[] = [];
  const images: string[] = [];
  (content ?? []).forEach((part, j) => {
    const at = `${param}[${j}]`;
    if (part.type === "text") {
      if (typeof part.text !== "string") throw invalidParam(`${at}.text`, "text must be a string");
      texts.push(part.text);
    } else if (part.type === "image_url") {
      images.push(imageUrlOf(part, at));
    }
    // Other part types (audio, files) mean nothing to an image model and are skipped.
  });
  return { text: texts.join("\n"), images };
}

/** Parses and checks a chat completion body. */
export function parseChatRequest(body: unknown): ChatRequest {
  if (!isJsonObject(body)) throw notAnObject();
  const parsed = Body.safeParse(body);
  if (!parsed.success) throw zodError(parsed.error);
  const { model, messages, stream, stream_options } = parsed.data;
  let userIndex = -1;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].role === "user") {
      userIndex = i;
      break;
    }
  }
  if (userIndex < 0) throw invalidParam("messages", "messages must contain a user message");
  const { text, images } = messageParts(
    messages[userIndex].content,
    `messages[${userIndex}].content`,
  );
  return {
    model,
    prompt: text,
    images,
    stream: stream === true,
    includeUsage: stream === true && stream_options?.include_usage === true,
    userIndex,
    messages,
    fields: withImageConfig(body),
    imagesOut: Array.isArray(body.modalities) && body.modalities.includes("image"),
  };
}

/**
 * OpenRouter's chat-side `image_config: {aspect_ratio, image_size}` (`image_size` there is a tier,
 * `1K`/`2K`/`4K`) as the body's own size fields, which win when both are sent.
 */
function withImageConfig(body: Record<string, unknown>): Record<string, unknown> {
  const config = body.image_config;
  if (!isJsonObject(config)) return body;
  const fields = { ...body };
  for (const name of ["aspect_ratio", "image_size"]) {
    if (fields[name] === undefined && config[name] !== undefined) fields[name] = config[name];
  }
  return fields;
}
