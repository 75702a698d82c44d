/**
 * A conversation turned into a generation, shared by chat completions and the Responses API: the
 * last user message's text with its prompt flags taken off, its images (or, for an edit model,
 * the newest images earlier in the conversation), the per-request choices (`image_delivery`,
 * `progress`), the plan, and the markdown answer with its notes.
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
import { ApiError, invalidParam } from "../server/errors.ts";
import { choiceOr } from "../values.ts";
import { imagesFromHistory } from "./chat_history.ts";
import type { ChatRequest } from "./chat_request.ts";
import type { RequestAuth } from "./auth.ts";
import type { RequestContext } from "./context.ts";
import { metered } from "./metering.ts";
import { planHeaders, planNotes, requestedModel, upstreamCaller } from "./planning.ts";
import { prepareVideo } from "./chat_video.ts";
import type { PreparedGeneration } from "./prepared.ts";
import { parsePromptFlags } from "./prompt_flags.ts";
import { rewriteAsked, rewriteNote, rewritePlan } from "./prompt_rewrite.ts";
import { inlineOwnImages, storeImages } from "./stored_images.ts";

/**
 * The markdown answer: one image per line, the seed in the alt text, problems said plainly. With
 * `links: false`, the same lines without the images (they travel in `message.images[]`).
 */
export function toMarkdown(
  outcome: GenerationOutcome,
  notes: string[] = [],
  links = true,
): string {
  const lines = outcome.images.map((image, i) => {
    const alt = image.seed === undefined ? `image ${i + 1}` : `seed ${image.seed}`;
    return links ? `![${alt}](${image.url})` : `Image ${i + 1}: ${alt}.`;
  });
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

const DELIVERY = { url: "url", data: "data", store: "store" } as const;
const PROGRESS = { reasoning: "reasoning", true: "reasoning", off: "off", false: "off" } as const;

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

/** Checks a conversation against the model and plans its generation. */
export async function prepareGeneration(
  ctx: RequestContext,
  auth: RequestAuth,
  chat: ChatRequest,
): Promise<PreparedGeneration> {
  const { config } = ctx.app;
  const flags = parsePromptFlags(chat.prompt);
  const fields = withFlags(chat.fields, flags.fields);
  let delivery = enumField(
    fields.image_delivery,
    "image_delivery",
    DELIVERY,
    config.imageDelivery,
  );
  // OpenRouter's shape promises links a client can keep: the stored copy where there is a store.
  if (chat.imagesOut && delivery === "url" && ctx.app.store) delivery = "store";
  const progress = enumField(fields.progress, "progress", PROGRESS, config.progress);

  const model = await requestedModel(ctx, auth, chat.model, {
    withImages: chat.images.length > 0,
  });
  const param = `messages[${chat.userIndex}].content`;
  // What a held generation keeps: not the parsed conversation, only the name it asked for.
  const requested = chat.model;
  const found = inputImages(chat, model, param);
  const { fromHistory } = found;
  const images = await inlineOwnImages(ctx, found.images, param);
  if (model.video) {
    return prepareVideo(ctx, auth, {
      model,
      requested,
      prompt: flags.prompt,
      images,
      imagesParam: param,
      fields,
      stream: chat.stream,
      progress: progress === "reasoning",
    });
  }
  const plan = planGeneration({
    model,
    prompt: flags.prompt,
    images,
    fields,
    imagesParam: param,
    promptParam: param,
    strict: config.strictParams,
  });
  const ask = rewriteAsked(ctx, auth, fields, images.length > 0, plan.ignored);

  const run = async (signal: AbortSignal) => {
    try {
      const rewrite = ask ? await rewritePlan(ctx, auth, plan, ask, signal) : undefined;
      const outcome = await metered(
        ctx,
        auth,
        { plan, requested },
        () => runGeneration(plan, upstreamCaller(ctx, auth, signal)),
      );
      const store = delivery === "store" ? ctx.app.store : undefined;
      const notes = delivery === "data"
        ? await embedImages(ctx, outcome, signal)
        : store
        ? await storeImages(ctx, store, outcome, signal)
        : [];
      const said = [...notes, ...rewriteNote(rewrite), ...planNotes(plan)];
      return {
        outcome,
        markdown: toMarkdown(outcome, said),
        caption: toMarkdown(outcome, said, false),
        rewrite,
      };
    } catch (err) {
      if (fromHistory && err instanceof ApiError && err.status === 400) {
        throw new ApiError(400, err.message + HISTORY_HINT, { param, code: err.code });
      }
      throw err;
    }
  };
  return {
    progress: progress === "reasoning",
    intro: describe(plan),
    headers: planHeaders(plan),
    acquire: () => ctx.app.slots.acquire(),
    run,
  };
}

/** The first progress line: what is being made. */
export function describe(plan: GenerationPlan): string {
  const size = plan.imageSize ? ` at ${plan.imageSize}` : "";
  return `Generating ${plan.n} image${plan.n === 1 ? "" : "s"} with ${plan.model.id}${size}…\n`;
}
