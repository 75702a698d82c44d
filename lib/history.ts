/**
 * Multi-turn editing: when an edit model gets a user message without images, the images it works
 * on come from the conversation — the most recent earlier message that has any, be it a user's
 * attached images or the assistant's own markdown images (URLs or data URIs).
 * @module
 */
import { type ChatMessage, messageParts } from "./chat_request.ts";

const MARKDOWN_IMAGE =
  /!\[[^\]\n]*\]\(\s*((?:https?:\/\/|data:image\/[a-z0-9.+-]+;base64,)[^\s)]+)\s*\)/gi;
const DATA_URI = /^data:image\/[a-z0-9.+-]+;base64,[A-Za-z0-9+/]+=*$/i;

/** The markdown images in a text, in order; malformed data URIs are skipped. */
export function markdownImages(text: string): string[] {
  return [...text.matchAll(MARKDOWN_IMAGE)].map((m) => m[1]).filter((url) =>
    !url.startsWith("data:") || DATA_URI.test(url)
  );
}

/** The images of one message: a user's `image_url` parts, or markdown images in any text. */
function imagesOf(message: ChatMessage, index: number): string[] {
  try {
    const { text, images } = messageParts(message.content, `messages[${index}].content`);
    return message.role === "user" && images.length ? images : markdownImages(text);
  } catch {
    return []; // A broken earlier message is not this request's fault; look further back.
  }
}

/** Images from the newest earlier message that has any, at most `max`. */
export function imagesFromHistory(messages: ChatMessage[], before: number, max: number): string[] {
  for (let i = before - 1; i >= 0; i--) {
    const role = messages[i].role;
    if (role !== "user" && role !== "assistant") continue;
    const found = imagesOf(messages[i], i);
    if (found.length) return found.slice(0, max);
  }
  return [];
}
