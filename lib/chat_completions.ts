/**
 * `POST /v1/chat/completions`: the last user message becomes a generation; the answer is one
 * markdown image per generated image, streamed (with keep-alives, or progress lines) or not.
 * Prompt flags, images taken from the conversation for edit models, and embedded (`data`)
 * delivery happen here, on top of the shared planner.
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
  acquireGenerationSlot,
  authorize,
  downloadGenerated,
  finalError,
  jsonResponse,
  readJson,
  type RequestContext,
  resolveModel,
  upstreamCaller,
} from "./context.ts";
import { ApiError, invalidParam } from "./errors.ts";
import {
  failureSummary,
  type GenerationOutcome,
  type GenerationPlan,
  planGeneration,
  runGeneration,
} from "./generation.ts";
import { imagesFromHistory } from "./history.ts";
import { parsePromptFlags } from "./prompt_flags.ts";
import { CLIENT_CLOSED } from "./siliconflow.ts";

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

function choice<T extends string>(
  value: unknown,
  param: string,
  map: Record<string, T>,
  fallback: T,
): T {
  if (value === undefined || value === null || value === "") return fallback;
  const key = typeof value === "string" || typeof value === "boolean"
    ? String(value).toLowerCase()
    : undefined;
  if (key === undefined || !Object.hasOwn(map, key)) {
    throw invalidParam(param, `${param} must be one of ${Object.keys(map).join(", ")}`);
  }
  return map[key];
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
      const { base64, contentType } = await downloadGenerated(ctx, image.url, signal);
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

/** Handles a chat completion request. */
export async function chatCompletions(ctx: RequestContext): Promise<Response> {
  const auth = authorize(ctx);
  const chat = parseChatRequest(await readJson(ctx));
  const flags = parsePromptFlags(chat.prompt);
  const fields = withFlags(chat.fields, flags.fields);
  const delivery = choice(fields.image_delivery, "image_delivery", {
    url: "url",
    data: "data",
  }, ctx.config.imageDelivery);
  const progress = choice(fields.progress, "progress", {
    reasoning: "reasoning",
    true: "reasoning",
    off: "off",
    false: "off",
  }, ctx.config.progress) === "reasoning";

  const model = resolveModel(ctx, chat.model, chat.images.length > 0);
  ctx.log.model = model.id;
  const param = `messages[${chat.userIndex}].content`;
  let images = chat.images;
  const fromHistory = images.length === 0 && model.inputImages.min > 0;
  if (fromHistory) {
    images = imagesFromHistory(chat.messages, chat.userIndex, model.inputImages.max);
    if (images.length === 0) {
      throw invalidParam(
        param,
        `${model.id} edits images, and none was found: attach an image to your message, or generate one earlier in this conversation.`,
        "image_required",
      );
    }
  }
  const plan = planGeneration({
    model,
    prompt: flags.prompt,
    images,
    fields,
    imagesParam: param,
    promptParam: param,
  });
  const meta = {
    id: `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`,
    created: Math.floor(ctx.now() / 1000),
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
    return toMarkdown(outcome, notes);
  };

  const release = acquireGenerationSlot(ctx);
  if (!chat.stream) {
    try {
      return jsonResponse(toChatCompletion(meta, await produce(ctx.signal)));
    } finally {
      release();
    }
  }
  return streamAnswer(
    ctx,
    meta,
    chat.includeUsage,
    progress ? describe(plan) : undefined,
    async (signal) => {
      try {
        return await produce(signal);
      } finally {
        release();
      }
    },
  );
}

/** The first progress line: what is being made. */
function describe(plan: GenerationPlan): string {
  const size = plan.imageSize ? ` at ${plan.imageSize}` : "";
  return `Generating ${plan.n} image${plan.n === 1 ? "" : "s"} with ${plan.model.id}${size}…\n`;
}

function streamAnswer(
  ctx: RequestContext,
  meta: { id: string; created: number; model: string },
  includeUsage: boolean,
  progressIntro: string | undefined,
  produce: (signal: AbortSignal) => Promise<string>,
): Response {
  const abort = new AbortController();
  const onClientGone = () => abort.abort();
  ctx.signal.addEventListener("abort", onClientGone, { once: true });
  ctx.stats.streams++;
  const started = ctx.now();
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
      const elapsed = () => Math.round((ctx.now() - started) / 1000);
      send({ kind: "role" });
      if (progressIntro) send({ kind: "reasoning", text: progressIntro });
      timer = setInterval(
        () =>
          send(
            progressIntro
              ? { kind: "reasoning", text: `Still working… ${elapsed()} s\n` }
              : { kind: "keepalive" },
          ),
        ctx.config.keepAliveMs,
      );
      produce(abort.signal).then(
        (markdown) => {
          if (progressIntro) send({ kind: "reasoning", text: `Done in ${elapsed()} s.\n` });
          send({ kind: "content", text: markdown });
          send({ kind: "finish" });
          send({ kind: "usage", usage: ZERO_USAGE });
          return 200;
        },
        (err) => {
          const error = finalError(ctx, err);
          if (error.status !== CLIENT_CLOSED) send({ kind: "error", error });
          ctx.log.outcome = error.code ?? undefined;
          return error.status;
        },
      ).then((status) => {
        clearInterval(timer);
        ctx.signal.removeEventListener("abort", onClientGone);
        ctx.stats.streams--;
        try {
          controller.close();
        } catch {
          // Already cancelled.
        }
        finish(abort.signal.aborted && !ctx.shutdownSignal.aborted ? CLIENT_CLOSED : status);
      });
    },
    cancel() {
      abort.abort();
      clearInterval(timer);
    },
  });
  return new Response(source.pipeThrough(new ChatChunkStream(meta, includeUsage)), {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
}
