/**
 * `POST /v1/chat/completions`: the last user message becomes a generation; the answer is one
 * markdown image per generated image, streamed (with keep-alives, or progress lines) or not.
 * @module
 */
import { readJson } from "../server/body.ts";
import { jsonResponse } from "../server/response.ts";
import { parseChatRequest } from "./chat_request.ts";
import {
  ChatChunkEncoder,
  type ChatStreamEvent,
  type CompletionMeta,
  toChatCompletion,
  ZERO_USAGE,
} from "./chat_stream.ts";
import { authorizeRequest } from "./auth.ts";
import { bodyLimits, type RequestContext } from "./context.ts";
import { streamAnswer } from "./stream_answer.ts";
import { prepareGeneration } from "./conversation.ts";
import type { PreparedGeneration } from "./prepared.ts";

/** Handles a chat completion request. */
export async function chatCompletions(ctx: RequestContext): Promise<Response> {
  const auth = await authorizeRequest(ctx);
  const chat = parseChatRequest(await readJson(ctx.request, bodyLimits(ctx)));
  const generation = await prepareGeneration(ctx, auth, chat);
  const meta: CompletionMeta = {
    id: `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`,
    created: Math.floor(ctx.app.now() / 1000),
    model: chat.model,
  };
  const release = generation.acquire();
  if (chat.stream) {
    const intro = generation.progress ? generation.intro : undefined;
    const answer = { meta, includeUsage: chat.includeUsage, intro, headers: generation.headers };
    return streamChat(ctx, answer, generation, release);
  }
  try {
    const { markdown } = await generation.run(ctx.signal);
    return jsonResponse(toChatCompletion(meta, markdown), 200, generation.headers);
  } finally {
    release();
  }
}

/** A streamed chat answer: role, progress lines if asked for, the markdown, then the end. */
function streamChat(
  ctx: RequestContext,
  answer: {
    meta: CompletionMeta;
    includeUsage: boolean;
    intro?: string;
    headers: Record<string, string>;
  },
  generation: PreparedGeneration,
  release: () => void,
): Promise<Response> {
  const { intro } = answer;
  return streamAnswer<ChatStreamEvent>(ctx, {
    encoder: new ChatChunkEncoder(answer.meta, answer.includeUsage),
    keepAlive: (s) =>
      intro
        ? { kind: "reasoning", text: `Still working… ${s} s${generation.status?.() ?? ""}\n` }
        : { kind: "keepalive" },
    // Chat UIs that read only choices[0] show the failure as text; SDKs raise the error event.
    failureEvents: (error) => [
      { kind: "content", text: `⚠️ ${error.message}` },
      { kind: "error", error },
    ],
    headers: answer.headers,
  }, async (out, signal) => {
    out.send({ kind: "role" });
    if (intro) out.send({ kind: "reasoning", text: intro });
    let markdown: string;
    try {
      ({ markdown } = await generation.run(signal));
    } finally {
      release();
    }
    if (intro) out.send({ kind: "reasoning", text: `Done in ${out.elapsedS()} s.\n` });
    out.send({ kind: "content", text: markdown });
    out.send({ kind: "finish" });
    out.send({ kind: "usage", usage: ZERO_USAGE });
  });
}
