/**
 * `POST /v1/responses` for image generation, as the Vercel AI SDK's default provider, Cherry
 * Studio's "OpenAI-Response" type and newer OpenAI tooling call it. The answer's `output` holds a
 * `message` whose `output_text` carries the markdown images (so text-only clients show them), and,
 * when the client asks through the `image_generation` tool or `include`, one
 * `image_generation_call` item per image with its base64 `result`. Streamed, it is the Responses
 * event sequence, with SSE comments as keep-alives.
 * @module
 */
import { readJson } from "../server/body.ts";
import type { ApiError } from "../server/errors.ts";
import type { EventEncoder } from "../server/event_stream.ts";
import { jsonResponse } from "../server/response.ts";
import { authorizeRequest } from "./auth.ts";
import { bodyLimits, type RequestContext } from "./context.ts";
import { streamAnswer } from "./stream_answer.ts";
import { prepareGeneration } from "./conversation.ts";
import { parseResponsesRequest } from "./responses_request.ts";
import { answeredImage } from "./stored_images.ts";
import type { ResponseObject, ResponseOutputItem, Usage } from "./types.ts";
import type { Made } from "./prepared.ts";

const id = (prefix: string) => `${prefix}_${crypto.randomUUID().replaceAll("-", "")}`;

/** The Responses usage object: the prompt rewrite's tokens, or none. */
function usageOf(usage: Usage | undefined) {
  return {
    input_tokens: usage?.prompt_tokens ?? 0,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: usage?.completion_tokens ?? 0,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: usage?.total_tokens ?? 0,
  };
}

/** What every event of one answer shares, and the usage once it is known. */
interface Base {
  id: string;
  created: number;
  model: string;
  tools: unknown[];
  usage?: Usage;
}

/** The `response` object around some output. */
function responseObject(
  base: Base,
  status: ResponseObject["status"],
  output: ResponseOutputItem[],
  error: ApiError | null = null,
): ResponseObject {
  return {
    id: base.id,
    object: "response",
    created_at: base.created,
    status,
    model: base.model,
    output,
    error: error ? { code: error.code ?? "server_error", message: error.message } : null,
    incomplete_details: null,
    instructions: null,
    metadata: {},
    parallel_tool_calls: false,
    temperature: null,
    tool_choice: "auto",
    tools: base.tools,
    top_p: null,
    usage: status === "completed" ? usageOf(base.usage) : null,
  } satisfies ResponseObject;
}

/** The output items of a finished generation: image results (when asked for), then the message. */
async function outputItems(
  ctx: RequestContext,
  made: Made,
  wantResults: boolean,
  signal: AbortSignal,
): Promise<ResponseOutputItem[]> {
  const items: ResponseOutputItem[] = [];
  if (wantResults) {
    for (const image of made.outcome.images) {
      const { base64 } = await answeredImage(ctx, image.url, signal, "tools");
      items.push({
        type: "image_generation_call",
        id: id("ig"),
        status: "completed",
        result: base64,
        ...(made.rewrite?.revised ? { revised_prompt: made.rewrite.revised } : {}),
      });
    }
  }
  items.push({
    type: "message",
    id: id("msg"),
    status: "completed",
    role: "assistant",
    content: [{ type: "output_text", text: made.markdown, annotations: [] }],
  });
  return items;
}

/** `POST /v1/responses`. */
export async function responses(ctx: RequestContext): Promise<Response> {
  const auth = await authorizeRequest(ctx);
  const request = parseResponsesRequest(await readJson(ctx.request, bodyLimits(ctx)));
  const generation = await prepareGeneration(ctx, auth, request.chat).catch((err) => {
    throw request.named(err);
  });
  const base: Base = {
    id: id("resp"),
    created: Math.floor(ctx.app.now() / 1000),
    model: request.chat.model,
    tools: request.tools,
  };
  const release = generation.acquire();
  const produce = async (signal: AbortSignal) => {
    try {
      const made = await generation.run(signal).catch((err) => {
        throw request.named(err);
      });
      base.usage = made.rewrite?.usage;
      return await outputItems(ctx, made, request.wantResults, signal);
    } finally {
      release();
    }
  };
  const headers = { ...generation.headers };
  const ignored = [headers["x-ignored-params"], ...request.ignored].filter(Boolean);
  if (ignored.length) headers["x-ignored-params"] = ignored.join(", ");
  if (!request.stream) {
    return jsonResponse(responseObject(base, "completed", await produce(ctx.signal)), 200, headers);
  }
  return streamResponse(ctx, { base, headers }, produce);
}

/** One Responses stream event, before its sequence number. */
type ResponseEvent = { type: string; [field: string]: unknown } | { type: "keepalive" };

/** Encodes Responses events as SSE, numbering them; keep-alives are comments. */
function responseEventEncoder(): EventEncoder<ResponseEvent> {
  let sequence = 0;
  return {
    encode(event) {
      if (event.type === "keepalive") return ": keepalive\n\n";
      const data = JSON.stringify({ ...event, sequence_number: sequence++ });
      return `event: ${event.type}\ndata: ${data}\n\n`;
    },
  };
}

/** The events that add one finished output item. */
function itemEvents(item: ResponseOutputItem, outputIndex: number): ResponseEvent[] {
  if (item.type === "image_generation_call") {
    return [
      {
        type: "response.output_item.added",
        output_index: outputIndex,
        item: { ...item, status: "in_progress", result: null },
      },
      { type: "response.output_item.done", output_index: outputIndex, item },
    ];
  }
  const part = item.content[0];
  const at = { item_id: item.id, output_index: outputIndex, content_index: 0 };
  return [
    {
      type: "response.output_item.added",
      output_index: outputIndex,
      item: { ...item, status: "in_progress", content: [] },
    },
    { type: "response.content_part.added", ...at, part: { ...part, text: "" } },
    { type: "response.output_text.delta", ...at, delta: part.text, logprobs: [] },
    { type: "response.output_text.done", ...at, text: part.text, logprobs: [] },
    { type: "response.content_part.done", ...at, part },
    { type: "response.output_item.done", output_index: outputIndex, item },
  ];
}

function streamResponse(
  ctx: RequestContext,
  answer: {
    base: Base;
    headers: Record<string, string>;
  },
  produce: (signal: AbortSignal) => Promise<ResponseOutputItem[]>,
): Promise<Response> {
  const { base } = answer;
  return streamAnswer<ResponseEvent>(ctx, {
    encoder: responseEventEncoder(),
    keepAlive: () => ({ type: "keepalive" }),
    failureEvents: (error) => {
      const { message, code, param } = error.toJSON().error;
      return [
        { type: "error", code, message, param },
        { type: "response.failed", response: responseObject(base, "failed", [], error) },
      ];
    },
    headers: answer.headers,
  }, async (out, signal) => {
    const started = responseObject(base, "in_progress", []);
    out.send({ type: "response.created", response: started });
    out.send({ type: "response.in_progress", response: started });
    const items = await produce(signal);
    items.forEach((item, i) => itemEvents(item, i).forEach((event) => out.send(event)));
    out.send({ type: "response.completed", response: responseObject(base, "completed", items) });
  });
}
