/**
 * Opt-in prompt rewriting: before the image calls, a SiliconFlow chat model
 * (`PROMPT_REWRITE_MODEL`) extends the prompt, on the same key that pays for the images. Asked per
 * request (`prompt_extend: true`, or fal's and BFL's names for it, or the `--extend` prompt flag)
 * or on by default for an access key; edits get an edit instruction rather than a new scene. The
 * rewritten prompt is returned; on any failure the original is used, and the answer says so.
 * @module
 */
import { type GenerationPlan, MAX_PROMPT_CHARS } from "../generation/plan.ts";
import { ApiError, invalidParam } from "../server/errors.ts";
import { timeLimit } from "../time_limit.ts";
import { parseChoice, present } from "../values.ts";
import type { RequestAuth } from "./auth.ts";
import type { RequestContext } from "./context.ts";
import type { Usage } from "./types.ts";

/** The request fields that ask for it: ours, Alibaba's and fal's, and BFL's. */
export const REWRITE_FIELDS = ["prompt_extend", "enable_prompt_expansion", "prompt_upsampling"];

/** The longest a rewrite may take: it comes before the image, which takes long enough. */
const REWRITE_TIMEOUT_MS = 30_000;

const GENERATE_INSTRUCTIONS =
  "You write prompts for an image generation model. Rewrite the user's prompt as one detailed prompt: the subject, setting, composition, lighting and style. Keep every element the user asked for and add nothing that contradicts it. Write in the user's language, in at most 120 words. Answer with the prompt only.";
const EDIT_INSTRUCTIONS =
  "You write instructions for an image editing model, which changes an existing image. Rewrite the user's instruction as one precise edit instruction: what to change, where, and how it should look, and that everything else stays as it is. Do not describe a new image. Write in the user's language, in at most 80 words. Answer with the instruction only.";

/** Whether a request asked for rewriting, and the field it asked with. */
export interface RewriteAsk {
  /** The field that asked, or `access key` for a key's default. */
  by: string;
  /** Whether the request changes images (an edit instruction) or makes new ones. */
  edit: boolean;
}

/** What rewriting did. */
export interface PromptRewrite {
  /** The rewritten prompt, when it worked. */
  revised?: string;
  /** Why the original prompt was used instead. */
  failed?: string;
  /** The chat model's tokens. */
  usage: Usage;
}

const YES_NO: Readonly<Record<string, boolean>> = { true: true, false: false };

/**
 * Whether to rewrite this request's prompt: the first of {@link REWRITE_FIELDS} it sends (a 400
 * naming it unless true or false), else its access key's default. Asked on a server without
 * `PROMPT_REWRITE_MODEL`, the field is named in `ignored`.
 */
export function rewriteAsked(
  ctx: RequestContext,
  auth: RequestAuth,
  fields: Record<string, unknown>,
  edit: boolean,
  ignored: string[],
): RewriteAsk | undefined {
  const by = REWRITE_FIELDS.find((name) => present(fields[name]));
  let wanted = auth.account?.prompt_extend === true;
  if (by) {
    const value = parseChoice(fields[by], YES_NO);
    if (value === undefined) throw invalidParam(by, `${by} must be true or false`);
    wanted = value;
  }
  if (!wanted) return undefined;
  if (!ctx.app.config.promptRewriteModel) {
    if (by) ignored.push(by);
    return undefined;
  }
  return { by: by ?? "access key", edit };
}

/** The model's answer as a prompt: no thinking, no label, no quotes; undefined when empty. */
function cleaned(text: string): string | undefined {
  const prompt = text.replace(/<think>[\s\S]*?<\/think>/g, "")
    .trim()
    .replace(/^(prompt|instruction)\s*[:：]\s*/i, "")
    .replace(/^["“「'](.*)["”」']$/s, "$1")
    .trim();
  return prompt ? prompt.slice(0, MAX_PROMPT_CHARS) : undefined;
}

/**
 * Rewrites the plan's prompt in place (every call's), or leaves it when rewriting fails; answers
 * what happened. Never throws but for the client going away.
 */
export async function rewritePlan(
  ctx: RequestContext,
  auth: RequestAuth,
  plan: GenerationPlan,
  ask: RewriteAsk,
  signal: AbortSignal,
): Promise<PromptRewrite> {
  const model = ctx.app.config.promptRewriteModel!;
  const prompt = String(plan.calls[0].prompt);
  const ms = Math.min(ctx.app.config.upstreamTimeoutMs, REWRITE_TIMEOUT_MS);
  const limit = timeLimit(ms, signal);
  const usage: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  try {
    const answer = await ctx.app.upstream.chat({
      auth,
      signal: limit.signal,
      origin: () => ctx.url.origin,
    }, {
      model,
      messages: [
        { role: "system", content: ask.edit ? EDIT_INSTRUCTIONS : GENERATE_INSTRUCTIONS },
        { role: "user", content: prompt },
      ],
      max_tokens: 512,
      temperature: 0.7,
      stream: false,
      // Qwen3's thinking would cost time and tokens for nothing here.
      enable_thinking: false,
    });
    usage.prompt_tokens = answer.promptTokens;
    usage.completion_tokens = answer.completionTokens;
    usage.total_tokens = answer.promptTokens + answer.completionTokens;
    const revised = cleaned(answer.text);
    if (!revised) return { failed: `${model} answered with no prompt`, usage };
    for (const call of plan.calls) call.prompt = revised;
    return { revised, usage };
  } catch (err) {
    if (signal.aborted) throw err;
    const why = limit.timedOut()
      ? `${model} did not answer within ${ms / 1000} s`
      : err instanceof ApiError
      ? err.message
      : String(err);
    ctx.app.logger({ level: "warn", msg: "prompt rewrite failed", req: ctx.requestId, error: why });
    return { failed: why.slice(0, 300), usage };
  } finally {
    limit.clear();
  }
}

/** The line said about a rewrite in chat and in the Responses message. */
export function rewriteNote(rewrite: PromptRewrite | undefined): string[] {
  if (!rewrite) return [];
  if (rewrite.revised) return [`Prompt extended: ${rewrite.revised.replace(/\s+/g, " ")}`];
  return [`The prompt was not extended (${rewrite.failed}); the original was used.`];
}
