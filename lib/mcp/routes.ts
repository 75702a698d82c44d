/**
 * The MCP endpoint's routes, for the composition root to put beside the OpenAI routes. The
 * endpoint's module (and zod, for the tools' schemas) is loaded on first use.
 * @module
 */
import { path, type Route } from "../server/router.ts";
import type { RequestContext } from "../openai/context.ts";

let loaded: Promise<typeof import("./route.ts")> | undefined;
const endpoint = () => loaded ??= import("./route.ts");

/** `POST /mcp`, and `GET`/`DELETE /mcp` (405: stateless, no stream and no session). */
export const MCP_ROUTES: Route<RequestContext>[] = [
  { method: "POST", pattern: path("/mcp"), handle: async (ctx) => (await endpoint()).mcpPost(ctx) },
  { method: "GET", pattern: path("/mcp"), handle: async () => (await endpoint()).mcpOther() },
  { method: "DELETE", pattern: path("/mcp"), handle: async () => (await endpoint()).mcpOther() },
];

/** Loads the endpoint (called once the server listens, as the OpenAI routes are). */
export async function preloadMcp(): Promise<void> {
  await endpoint();
}
