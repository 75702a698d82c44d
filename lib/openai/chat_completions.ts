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
import type { Made, PreparedGeneration } from "./prepared.ts";
import type { ImageUrlPart } from "./types.ts";

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
    return streamChat(ctx, answer, generation, release, chat.imagesOut);
  }
  try {
    const made = await generation.run(ctx.signal);
    const { text, images } = answerShape(made, chat.imagesOut);
    const completion = toChatCompletion(meta, text, images);
    if (made.rewrite) completion.usage = made.rewrite.usage;
    return jsonResponse(completion, 200, generation.headers);
  } finally {
    release();
  }
}

/**
 * The answer's text and, when `modalities` asked for images (OpenRouter's shape), the images as
 * `image_url` parts beside a text that no longer repeats them. A video stays a markdown link.
 */
function answerShape(
  made: Made,
  imagesOut: boolean,
): { text: string; images?: ImageUrlPart[] } {
  if (!imagesOut || made.caption === undefined) return { text: made.markdown };
  const images = made.outcome.images.map((image): ImageUrlPart => ({
    type: "image_url",
    image_url: { url: image.url },
  }));
  return { text: made.caption, images };
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
  imagesOut: boolean,
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
    let made: Made;
    try {
      made = await generation.run(signal);
    } finally {
      release();
    }
    if (intro) out.send({ kind: "reasoning", text: `Done in ${out.elapsedS()} s.\n` });
    const { text, images } = answerShape(made, imagesOut);
    out.send({ kind: "content", text, images });
    out.send({ kind: "finish" });
    out.send({ kind: "usage", usage: made.rewrite?.usage ?? ZERO_USAGE });
  });
}
