/**
 * The route table: method, `URLPattern` and handler.
 * @module
 */
import { chatCompletions } from "./chat_completions.ts";
import type { RequestContext } from "./context.ts";
import { imagesEdits, imagesGenerations } from "./images.ts";
import { modelsList, modelsRetrieve } from "./models_routes.ts";

/** One route. */
export interface Route {
  /** HTTP method. */
  method: string;
  /** Path pattern. */
  pattern: URLPattern;
  /** The handler. */
  handle: (ctx: RequestContext) => Promise<Response>;
}

const path = (pathname: string) => new URLPattern({ pathname });

/** Every route; `/v1` may be left out, as some clients do. Model ids contain a slash. */
export const ROUTES: readonly Route[] = [
  { method: "POST", pattern: path("{/v1}?/chat/completions"), handle: chatCompletions },
  { method: "POST", pattern: path("{/v1}?/images/generations"), handle: imagesGenerations },
  { method: "POST", pattern: path("{/v1}?/images/edits"), handle: imagesEdits },
  { method: "GET", pattern: path("{/v1}?/models"), handle: modelsList },
  { method: "GET", pattern: path("{/v1}?/models/:id(.+)"), handle: modelsRetrieve },
];
