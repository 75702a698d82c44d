/**
 * `POST /v1/chat/completions`: the last user message becomes a generation; the answer is one
 * markdown image per generated image, streamed (with keep-alives, or progress lines) or not.
 * @module
 */
import { readJson } from "../server/body.ts";
import { CLIENT_CLOSED } from "../server/errors.ts";
import { eventStreamResponse } from "../server/event_stream.ts";
import { jsonResponse } from "../server/response.ts";
import { authorize } from "../siliconflow/keys.ts";
import { parseChatRequest } from "./chat_request.ts";
import {
  ChatChunkStream,
  type ChatStreamEvent,
  type CompletionMeta,
  toChatCompletion,
  ZERO_USAGE,
} from "./chat_stream.ts";
import { bodyLimits, failure, planHeaders, type RequestContext } from "./context.ts";
import { describe, prepareGeneration } from "./conversation.ts";

export { toMarkdown } from "./conversation.ts";

/** Handles a chat completion request. */
export async function chatCompletions(ctx: RequestContext): Promise<Response> {
  const auth = authorize(ctx.request.headers, ctx.app.config);
  const chat = parseChatRequest(await readJson(ctx.request, bodyLimits(ctx)));
  const generation = await prepareGeneration(ctx, auth, chat);
  const { plan } = generation;
  const meta: CompletionMeta = {
    id: `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`,
    created: Math.floor(ctx.app.now() / 1000),
    model: chat.model,
  };
  const release = ctx.app.slots.acquire();
  if (chat.stream) {
    const intro = generation.progress ? describe(plan) : undefined;
    const answer = { meta, includeUsage: chat.includeUsage, intro, headers: planHeaders(plan) };
    return streamChat(ctx, answer, async (signal) => {
      try {
        return (await generation.run(signal)).markdown;
      } finally {
        release();
      }
    });
  }
  try {
    const { markdown } = await generation.run(ctx.signal);
    return jsonResponse(toChatCompletion(meta, markdown), 200, planHeaders(plan));
  } finally {
    release();
  }
}

/** A streamed chat answer: role, progress lines if asked for, the markdown, then the end. */
async function streamChat(
  ctx: RequestContext,
  answer: {
    meta: CompletionMeta;
    includeUsage: boolean;
    intro?: string;
    headers: Record<string, string>;
  },
  produce: (signal: AbortSignal) => Promise<string>,
): Promise<Response> {
  const { intro } = answer;
  const { response, done } = await eventStreamResponse<ChatStreamEvent>(
    async (send, signal, elapsedS) => {
      send({ kind: "role" });
      if (intro) send({ kind: "reasoning", text: intro });
      const markdown = await produce(signal);
      if (intro) send({ kind: "reasoning", text: `Done in ${elapsedS()} s.\n` });
      send({ kind: "content", text: markdown });
      send({ kind: "finish" });
      send({ kind: "usage", usage: ZERO_USAGE });
    },
    {
      encoder: new ChatChunkStream(answer.meta, answer.includeUsage),
      keepAlive: {
        everyMs: ctx.app.config.keepAliveMs,
        event: (s) =>
          intro ? { kind: "reasoning", text: `Still working… ${s} s\n` } : { kind: "keepalive" },
      },
      signal: ctx.signal,
      shutdownSignal: ctx.app.shutdownSignal,
      onError: (err) => {
        const error = failure(ctx, err);
        ctx.log.outcome = error.code ?? undefined;
        // Chat UIs that read only choices[0] show the failure as text; SDKs raise the error event.
        const events: ChatStreamEvent[] = error.status === CLIENT_CLOSED ? [] : [
          { kind: "content", text: `⚠️ ${error.message}` },
          { kind: "error", error },
        ];
        return { events, status: error.status };
      },
      now: ctx.app.now,
      open: ctx.app.streams,
      headers: answer.headers,
      holdMs: ctx.app.config.streamHoldMs,
    },
  );
  ctx.streamDone = done;
  return response;
}
