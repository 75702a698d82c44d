/**
 * What a running MCP tool is given and what it answers.
 * @module
 */
import type { RequestContext } from "../openai/context.ts";

/** What a running tool may do besides its work: tell the client how far it got. */
export interface ToolRun {
  /** The MCP request's context (its key, its app). */
  ctx: RequestContext;
  /** Aborted when the client cancels or goes away. */
  signal: AbortSignal;
  /** A progress notification (when the client asked for them); `progress` only grows. */
  progress(progress: number, message: string, total?: number): void;
}

/** An MCP tool result. */
export interface ToolResult {
  content: Record<string, unknown>[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

/** A tool's failure, said in the tool result (never a transport error). */
export function toolError(message: string): ToolResult {
  return { content: [{ type: "text", text: message }], isError: true };
}

/** The largest image put into a result as `image` content; a larger one is given as a link. */
export const MAX_INLINE_IMAGE_BYTES = 1024 * 1024;
