/**
 * Multi-turn editing: when an edit model gets a user message without images, the images it works
 * on come from the conversation — the most recent earlier message that has any, be it a user's
 * attached images or the assistant's own markdown images (URLs or data URIs).
 * @module
 */
import { type ChatMessage, messageParts } from "./chat_request.ts";
import { isHttpUrl, isImageDataUri } from "../siliconflow/image_ref.ts";

const isSpace = (c: string) => c === " " || c === "\t" || c === "\n" || c === "\r";

/**
 * The markdown images `![alt](url)` in a text, in order, in time linear in its length; only
 * references that pass the image rule (http(s) URLs, image data URIs) are kept.
 *
 * A scan that fails tells where the next one may start: every `![` before the `]` (or line end)
 * that ended an alt text would end there too, and every link that starts inside a run of link
 * characters that was already found unclosed would end the same way.
 */
export function markdownImages(text: string): string[] {
  const found: string[] = [];
  let unclosedRunEnd = -1;
  let at = text.indexOf("![");
  while (at !== -1) {
    let k = at + 2;
    while (k < text.length && text[k] !== "]" && text[k] !== "\n") k++;
    if (k >= text.length) break;
    let next = k + 1;
    if (text[k] === "]" && text[k + 1] === "(") {
      let start = k + 2;
      while (start < text.length && isSpace(text[start])) start++;
      if (start > unclosedRunEnd) {
        let end = start;
        while (end < text.length && !isSpace(text[end]) && text[end] !== ")") end++;
        let close = end;
        while (close < text.length && isSpace(text[close])) close++;
        if (text[close] === ")" && end > start) {
          const url = text.slice(start, end);
          if (isHttpUrl(url) || isImageDataUri(url)) found.push(url);
          next = close + 1;
        } else unclosedRunEnd = end;
      }
    }
    at = text.indexOf("![", next);
  }
  return found;
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
