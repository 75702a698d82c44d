/**
 * `POST /v1/chat/completions`: the last user message becomes a generation; the answer is one
 * markdown image per generated image, streamed (with keep-alives) or not.
 * @module
 */
import { parseChatRequest } from "./chat_request.ts";
import {
  ChatChunkStream,
  type ChatStreamEvent,
  toChatCompletion,
  ZERO_USAGE,
} from "./chat_stream.ts";
import {
  jsonResponse,
  readJson,
  type RequestContext,
  requireApiKey,
  resolveModel,
  upstreamCaller,
} from "./context.ts";
import { toApiError } from "./errors.ts";
import { type GenerationOutcome, planGeneration, runGeneration } from "./generation.ts";
import { CLIENT_CLOSED } from "./siliconflow.ts";

/** The markdown answer: one image per line, the seed in the alt text, failures said plainly. */
export function toMarkdown(outcome: GenerationOutcome): string {
  const lines = outcome.images.map((image, i) =>
    `![${image.seed === undefined ? `image ${i + 1}` : `seed ${image.seed}`}](${image.url})`
  );
  if (outcome.failures.length) {
    const total = outcome.images.length + outcome.failures.length;
    lines.push(
      `> ${outcome.failures.length} of ${total} images failed: ${outcome.failures[0].message}`,
    );
  }
  return lines.join("\n");
}

/** Handles a chat completion request. */
export async function chatCompletions(ctx: RequestContext): Promise<Response> {
  const apiKey = requireApiKey(ctx);
  const chat = parseChatRequest(await readJson(ctx));
  const model = resolveModel(ctx, chat.model, chat.images.length > 0);
  ctx.log.model = model.id;
  const param = `messages[${chat.userIndex}].content`;
  const plan = planGeneration({
    model,
    prompt: chat.prompt,
    images: chat.images,
    fields: chat.fields,
    imagesParam: param,
    promptParam: param,
  });
  const meta = {
    id: `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`,
    created: Math.floor(ctx.now() / 1000),
    model: chat.model,
  };

  if (!chat.stream) {
    const outcome = await runGeneration(plan, upstreamCaller(ctx, apiKey, ctx.request.signal));
    return jsonResponse(toChatCompletion(meta, toMarkdown(outcome)));
  }

  const abort = new AbortController();
  const onClientGone = () => abort.abort();
  ctx.request.signal.addEventListener("abort", onClientGone, { once: true });
  let timer: ReturnType<typeof setInterval> | undefined;
  let finish!: (status: number) => void;
  ctx.streamDone = new Promise((resolve) => (finish = resolve));
  const source = new ReadableStream<ChatStreamEvent>({
    start(controller) {
      const send = (event: ChatStreamEvent) => {
        try {
          controller.enqueue(event);
        } catch {
          // The client has gone; cancel() below has already aborted the upstream call.
        }
      };
      send({ kind: "role" });
      timer = setInterval(() => send({ kind: "keepalive" }), ctx.config.keepAliveMs);
      runGeneration(plan, upstreamCaller(ctx, apiKey, abort.signal)).then(
        (outcome) => {
          send({ kind: "content", text: toMarkdown(outcome) });
          send({ kind: "finish" });
          send({ kind: "usage", usage: ZERO_USAGE });
          return 200;
        },
        (err) => {
          const error = toApiError(err, ctx.requestId);
          if (error.status !== CLIENT_CLOSED) send({ kind: "error", error });
          ctx.log.outcome = error.code ?? undefined;
          return error.status;
        },
      ).then((status) => {
        clearInterval(timer);
        ctx.request.signal.removeEventListener("abort", onClientGone);
        try {
          controller.close();
        } catch {
          // Already cancelled.
        }
        finish(abort.signal.aborted ? CLIENT_CLOSED : status);
      });
    },
    cancel() {
      abort.abort();
      clearInterval(timer);
    },
  });
  return new Response(source.pipeThrough(new ChatChunkStream(meta, chat.includeUsage)), {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
}
