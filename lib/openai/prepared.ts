/**
 * A conversation's work, ready to run as chat and the Responses API run it: images through the
 * image slots, a video through the video waits. Its own module, so that the image and the video
 * preparers both implement it without importing each other.
 * @module
 */
import type { GenerationOutcome } from "../generation/plan.ts";
import type { PromptRewrite } from "./prompt_rewrite.ts";

/** What a run made: the outcome, its markdown, and for images their caption and prompt rewrite. */
export interface Made {
  outcome: GenerationOutcome;
  markdown: string;
  caption?: string;
  rewrite?: PromptRewrite;
}

/** A conversation's generation (images, or a video), planned and ready to run. */
export interface PreparedGeneration {
  /** Whether progress lines were asked for (`PROGRESS`, or `progress` in the body). */
  progress: boolean;
  /** The first progress line: what is being made. */
  intro: string;
  /** Headers of the answer (`X-Ignored-Params`, parameter checks). */
  headers: Record<string, string>;
  /** Takes the slot this kind of work runs in (a 429 when none is free); call the answer once. */
  acquire(): () => void;
  /**
   * Runs it: the outcome, the markdown answer with its notes, and for images the answer's text
   * without the images (for OpenRouter's shape, where they travel in `message.images[]`).
   */
  run(signal: AbortSignal): Promise<Made>;
  /** Where a long job stands (a video's place in the queue), for progress lines. */
  status?: () => string;
}
