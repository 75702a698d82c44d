/**
 * The request side of `POST /v1/responses`: `input` as a string or a list of items (messages with
 * `input_text` / `input_image` / `output_text` parts, and earlier `image_generation_call` items),
 * turned into the chat shape that the shared conversation code takes. Earlier items count for
 * multi-turn editing the way earlier chat messages do.
 * @module
 */
import { ApiError, invalidParam, notAnObject } from "../server/errors.ts";
import { isJsonObject } from "../values.ts";
import { type ChatRequest, parseChatRequest } from "./chat_request.ts";

/** A Responses API request, checked. */
export interface ResponsesRequest {
  /** The conversation, in the shape chat uses. */
  chat: ChatRequest;
  /** Whether to stream the Responses events. */
  stream: boolean;
  /** Whether to return each image as an `image_generation_call` item with its base64 `result`. */
  wantResults: boolean;
  /** The tools as sent, echoed in the answer. */
  tools: unknown[];
  /** Fields of the `image_generation` tool that mean nothing here, as `image_generation.NAME`. */
  ignored: string[];
  /** An error of the chat code with the field at fault named in `input`'s terms. */
  named(err: unknown): unknown;
}

/**
 * What an `image_generation` tool entry (Codex adds `{type, output_format}` to every request) may
 * set for the image: its size and quality, and the output format where a model has one. The body's
 * own fields win. Its `model` is the hosted tool's (`gpt-image-1`), not the one asked for.
 */
const TOOL_FIELDS = ["size", "quality", "output_format", "n"] as const;
const TOOL_NOT_FIELDS = new Set(["type", "model"]);

/** The body's fields with the image tool's merged under them, and the tool's fields left unused. */
function withToolFields(body: Record<string, unknown>, tools: unknown[]) {
  const tool = tools.find((t) => isJsonObject(t) && t.type === "image_generation") as
    | Record<string, unknown>
    | undefined;
  if (!tool) return { fields: body, ignored: [] };
  const fields = { ...body };
  const ignored: string[] = [];
  for (const [name, value] of Object.entries(tool)) {
    if (TOOL_NOT_FIELDS.has(name) || value === undefined || value === null) continue;
    if ((TOOL_FIELDS as readonly string[]).includes(name)) {
      if (fields[name] === undefined) fields[name] = value;
    } else if (ignored.length < 20) ignored.push(`image_generation.${name.slice(0, 40)}`);
  }
  return { fields, ignored };
}

type Part = Record<string, unknown>;

/** One input content part as a chat part: text, or an image URL. */
function chatPart(part: unknown, at: string): Part | undefined {
  if (!isJsonObject(part)) throw invalidParam(at, "A content part must be an object");
  switch (part.type) {
    case "input_text":
    case "output_text":
    case "text":
      return { type: "text", text: part.text };
    case "input_image": {
      const url = typeof part.image_url === "string"
        ? part.image_url
        : isJsonObject(part.image_url)
        ? part.image_url.url
        : undefined;
      if (url === undefined && part.file_id !== undefined) {
        throw invalidParam(
          `${at}.file_id`,
          "file_id is not supported: send the image as image_url",
          "unsupported_parameter",
        );
      }
      return { type: "image_url", image_url: { url } };
    }
    default:
      return undefined; // other part types (files, audio, refusals) mean nothing to an image model
  }
}

/** Where a chat message came from: its `input` item, and the item's parts it kept, in order. */
interface Origin {
  item: number;
  parts: number[];
}

/** One input item as a chat message and its origin, or undefined for items with nothing to draw. */
function chatMessage(item: unknown, index: number): [Part, Origin] | undefined {
  const at = `input[${index}]`;
  if (!isJsonObject(item)) throw invalidParam(at, "An input item must be an object");
  const origin: Origin = { item: index, parts: [] };
  if (item.type === "image_generation_call") {
    // An image made earlier in the conversation, returned as base64.
    const result = typeof item.result === "string" ? item.result : "";
    return result
      ? [{ role: "assistant", content: `![](data:image/png;base64,${result})` }, origin]
      : undefined;
  }
  if (item.type !== undefined && item.type !== "message") return undefined;
  const content = typeof item.content === "string"
    ? item.content
    : Array.isArray(item.content)
    ? item.content.flatMap((p, j) => {
      const part = chatPart(p, `${at}.content[${j}]`);
      if (part) origin.parts.push(j);
      return part ? [part] : [];
    })
    : item.content;
  return [{ role: item.role, content }, origin];
}

/**
 * A field as the chat code names it (`messages[1].content[0].image_url`), as the client sent it
 * (`input[3].content[1].image_url`; `input` when it was a string).
 */
function inputParam(param: string, origins: Origin[] | undefined): string {
  const m = /^messages(?:\[(\d+)\](\.content(?:\[(\d+)\])?)?)?(.*)$/.exec(param);
  if (!m) return param;
  const origin = m[1] === undefined ? undefined : origins?.[Number(m[1])];
  if (!origin) return "input";
  const part = m[3] === undefined ? "" : `[${origin.parts[Number(m[3])] ?? m[3]}]`;
  return `input[${origin.item}]${m[2] ? `.content${part}` : ""}${m[4]}`;
}

/** The error with a field of `messages` named as the client sent it (see {@link inputParam}). */
function renamed(err: unknown, origins: Origin[] | undefined): unknown {
  if (!(err instanceof ApiError) || !err.param?.startsWith("messages")) return err;
  const param = inputParam(err.param, origins);
  return err.with({ message: err.message.replaceAll(err.param, param), param });
}

/** Parses a Responses API body into the chat shape. */
export function parseResponsesRequest(body: unknown): ResponsesRequest {
  if (!isJsonObject(body)) throw notAnObject();
  if (body.previous_response_id !== undefined && body.previous_response_id !== null) {
    throw invalidParam(
      "previous_response_id",
      "previous_response_id needs stored responses, and this server keeps none: send the earlier turns in input instead.",
      "unsupported_parameter",
    );
  }
  const input = body.input;
  if (typeof input !== "string" && !Array.isArray(input)) {
    throw invalidParam("input", "input must be a string or a list of input items");
  }
  const converted = Array.isArray(input)
    ? input.map(chatMessage).filter((m) => m !== undefined)
    : undefined;
  const messages = converted?.map(([message]) => message) ?? [{ role: "user", content: input }];
  const origins = converted?.map(([, origin]) => origin);
  const named = (err: unknown) => renamed(err, origins);
  const tools = Array.isArray(body.tools) ? body.tools : [];
  const include = Array.isArray(body.include) ? body.include : [];
  const { fields, ignored } = withToolFields(body, tools);
  let chat: ChatRequest;
  try {
    chat = parseChatRequest({ ...fields, messages, stream: body.stream === true });
  } catch (err) {
    throw named(err);
  }
  return {
    ignored,
    named,
    chat,
    stream: body.stream === true,
    wantResults: tools.some((t) => isJsonObject(t) && t.type === "image_generation") ||
      include.includes("image_generation_call.result"),
    tools,
  };
}
