/**
 * `POST /v1/chat/completions`: the last user message becomes a generation; the answer is one
 * markdown image per generated image, streamed (with keep-alives, or progress lines) or not.
 * Prompt flags, images taken from the conversation for edit models, and embedded (`data`)
 * delivery happen here, on top of the shared planner.
 * @module
 */
import {
  failureSummary,
  type GenerationOutcome,
  type GenerationPlan,
  planGeneration,
  runGeneration,
} from "../generation/plan.ts";
import type { ModelSpec } from "../generation/registry.ts";
import { readJson } from "../server/body.ts";
import { ApiError, CLIENT_CLOSED, invalidParam } from "../server/errors.ts";
import { eventStreamResponse } from "../server/event_stream.ts";
import { jsonResponse } from "../server/response.ts";
import { choiceOr } from "../server/values.ts";
import { authorize } from "../siliconflow/keys.ts";
import { imagesFromHistory } from "./chat_history.ts";
import { type ChatRequest, parseChatRequest } from "./chat_request.ts";
import {
  ChatChunkStream,
  type ChatStreamEvent,
  type CompletionMeta,
  toChatCompletion,
  ZERO_USAGE,
} from "./chat_stream.ts";
import {
  bodyLimits,
  failure,
  ignoredHeaders,
  ignoredNote,
  type RequestContext,
  requestedModel,
  upstreamCaller,
} from "./context.ts";
import { parsePromptFlags } from "./prompt_flags.ts";

/** The markdown answer: one image per line, the seed in the alt text, problems said plainly. */
export function toMarkdown(outcome: GenerationOutcome, notes: string[] = []): string {
  const lines = outcome.images.map((image, i) =>
    `![${image.seed === undefined ? `image ${i + 1}` : `seed ${image.seed}`}](${image.url})`
  );
  const failed = failureSummary(outcome);
  if (failed) lines.push(`> ${failed}`);
  for (const note of notes) lines.push(`> ${note}`);
  return lines.join("\n");
}

/** A request field that names one of `choices`; the server's setting when it is absent. */
function enumField<T>(
  value: unknown,
  param: string,
  choices: Readonly<Record<string, T>>,
  fallback: T,
): T {
  const found = choiceOr(value, choices, fallback);
  if (found === undefined) {
    throw invalidParam(param, `${param} must be one of ${Object.keys(choices).join(", ")}`);
  }
  return found;
}

/** Request fields with prompt flags applied; a flag beats any body field it conflicts with. */
function withFlags(body: Record<string, unknown>, flags: Record<string, string>) {
  const fields = { ...body, ...flags };
  if ("aspect_ratio" in flags && !("image_size" in flags)) delete fields.image_size;
  if ("image_size" in flags) delete fields.aspect_ratio;
  if ("aspect_ratio" in flags || "image_size" in flags) delete fields.size;
  return fields;
}

/** Swaps image URLs for data URIs, keeping the URL (with a note) where a download fails. */
async function embedImages(
  ctx: RequestContext,
  outcome: GenerationOutcome,
  signal: AbortSignal,
): Promise<string[]> {
  const notes: string[] = [];
  await Promise.all(outcome.images.map(async (image, i) => {
    try {
      const { base64, contentType } = await ctx.app.upstream.download(image.url, signal);
      image.url = `data:${contentType};base64,${base64}`;
    } catch (err) {
      notes.push(
        `Image ${i + 1} could not be embedded (${
          (err as Error).message
        }); its link expires in about an hour.`,
      );
    }
  }));
  return notes;
}

const HISTORY_HINT =
  " The input image was taken from earlier in the conversation; SiliconFlow's image links expire after an hour, so attach the image again (or use IMAGE_DELIVERY=data, which keeps images in the chat).";

/** The input images: the user's own, or for an edit model the newest ones in the history. */
function inputImages(
  chat: ChatRequest,
  model: ModelSpec,
  param: string,
): { images: string[]; fromHistory: boolean } {
  if (chat.images.length > 0 || model.inputImages.min === 0) {
    return { images: chat.images, fromHistory: false };
  }
  const images = imagesFromHistory(chat.messages, chat.userIndex, model.inputImages.max);
  if (images.length === 0) {
    throw invalidParam(
      param,
      `${model.id} edits images, and none was found: attach an image to your message, or generate one earlier in this conversation.`,
      "image_required",
    );
  }
  return { images, fromHistory: true };
}

/** Handles a chat completion request. */
export async function chatCompletions(ctx: RequestContext): Promise<Response> {
  const { config } = ctx.app;
  const auth = authorize(ctx.request.headers, config);
  const chat = parseChatRequest(await readJson(ctx.request, bodyLimits(ctx)));
  const flags = parsePromptFlags(chat.prompt);
  const fields = withFlags(chat.fields, flags.fields);
  const delivery = enumField(
    fields.image_delivery,
    "image_delivery",
    DELIVERY,
    config.imageDelivery,
  );
  const progress = enumField(fields.progress, "progress", PROGRESS, config.progress);

  const model = requestedModel(ctx, chat.model, { withImages: chat.images.length > 0 });
  const param = `messages[${chat.userIndex}].content`;
  const { images, fromHistory } = inputImages(chat, model, param);
  const plan = planGeneration({
    model,
    prompt: flags.prompt,
    images,
    fields,
    imagesParam: param,
    promptParam: param,
    strict: config.strictParams,
  });
  const meta: CompletionMeta = {
    id: `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`,
    created: Math.floor(ctx.app.now() / 1000),
    model: chat.model,
  };

  const produce = async (signal: AbortSignal): Promise<string> => {
    let outcome: GenerationOutcome;
    try {
      outcome = await runGeneration(plan, upstreamCaller(ctx, auth, signal));
    } catch (err) {
      if (fromHistory && err instanceof ApiError && err.status === 400) {
        throw new ApiError(400, err.message + HISTORY_HINT, { param, code: err.code });
      }
      throw err;
    }
    const notes = delivery === "data" ? await embedImages(ctx, outcome, signal) : [];
    return toMarkdown(outcome, [...notes, ...ignoredNote(plan)]);
  };

  const release = ctx.app.slots.acquire();
  if (chat.stream) {
    const intro = progress === "reasoning" ? describe(plan) : undefined;
    const answer = { meta, includeUsage: chat.includeUsage, intro, headers: ignoredHeaders(plan) };
    return streamChat(ctx, answer, async (signal) => {
      try {
        return await produce(signal);
      } finally {
        release();
      }
    });
  }
  try {
    const content = await produce(ctx.signal);
    return jsonResponse(toChatCompletion(meta, content), 200, ignoredHeaders(plan));
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

const DELIVERY = { url: "url", data: "data" } as const;
const PROGRESS = { reasoning: "reasoning", true: "reasoning", off: "off", false: "off" } as const;

/** The first progress line: what is being made. */
function describe(plan: GenerationPlan): string {
  const size = plan.imageSize ? ` at ${plan.imageSize}` : "";
  return `Generating ${plan.n} image${plan.n === 1 ? "" : "s"} with ${plan.model.id}${size}…\n`;
}
