/**
 * `POST /mcp`: the Model Context Protocol over Streamable HTTP, stateless (no session: any
 * instance answers any request). `initialize`, `ping`, `tools/list` and `tools/call`; a tool call
 * answers as an event stream when the client takes one, with progress notifications (when it sent
 * a `progressToken`) and keep-alives while SiliconFlow works, and `notifications/cancelled` (or the
 * client going away) aborts the SiliconFlow call. The same keys, quotas and limits as the OpenAI
 * routes: the tools call them.
 * @module
 */
import type { App } from "../app.ts";
import { readJson } from "../server/body.ts";
import { ApiError } from "../server/errors.ts";
import { jsonResponse } from "../server/response.ts";
import { isJsonObject } from "../values.ts";
import { VERSION } from "../version.ts";
import { authorizeRequest } from "../openai/auth.ts";
import { bodyLimits, type RequestContext } from "../openai/context.ts";
import { ownerOf } from "../openai/owners.ts";
import { streamAnswer } from "../openai/stream_answer.ts";
import {
  originRefusal,
  parseMessage,
  PROTOCOL_VERSIONS,
  type RequestId,
  RPC,
  rpcError,
  rpcNotification,
  rpcResult,
} from "./protocol.ts";
import { callTool, isTool, toolList, type ToolResult, type ToolRun } from "./tools.ts";

const INSTRUCTIONS =
  "Tools for SiliconFlow's image and video models: generate_image makes images from a prompt, edit_image changes images (by URL, data URI, or the id of an image made here), generate_video makes a five-second video (minutes), get_video collects one, list_models names the models. Results carry lasting links.";

/** Tool calls running in this instance, by caller and request id: `notifications/cancelled` ends them. */
const running = new WeakMap<App, Map<string, AbortController>>();

function runningOf(app: App): Map<string, AbortController> {
  let map = running.get(app);
  if (!map) running.set(app, map = new Map());
  return map;
}

/** `GET` and `DELETE /mcp`: a stateless server has no stream to offer and no session to end. */
export function mcpOther(): Promise<Response> {
  const refusal = rpcError(null, RPC.invalidRequest, "Method not allowed: POST only");
  return Promise.resolve(jsonResponse(refusal, 405, { allow: "POST" }));
}

/** `POST /mcp`. */
export async function mcpPost(ctx: RequestContext): Promise<Response> {
  const { config } = ctx.app;
  const refusal = originRefusal(ctx.request, {
    listenHost: config.host,
    allowedHosts: config.mcpAllowedHosts,
    publicBaseUrl: config.publicBaseUrl,
  });
  if (refusal) {
    await ctx.request.body?.cancel();
    ctx.log.outcome = "mcp_origin_refused";
    return jsonResponse(rpcError(null, RPC.invalidRequest, refusal), 403);
  }
  const version = ctx.request.headers.get("mcp-protocol-version");
  if (version && !PROTOCOL_VERSIONS.includes(version)) {
    await ctx.request.body?.cancel();
    const message = `MCP-Protocol-Version ${version.slice(0, 40)} is not one this server speaks (${
      PROTOCOL_VERSIONS.join(", ")
    })`;
    return jsonResponse(rpcError(null, RPC.invalidRequest, message), 400);
  }
  const auth = await authorizeRequest(ctx);
  let body: unknown;
  try {
    body = await readJson(ctx.request, bodyLimits(ctx));
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) {
      return jsonResponse(rpcError(null, RPC.parseError, err.message), 400);
    }
    throw err;
  }
  const message = parseMessage(body);
  switch (message.kind) {
    case "invalid":
      return jsonResponse(rpcError(message.id, RPC.invalidRequest, message.message), 400);
    case "response":
      return new Response(null, { status: 202 });
    case "notification":
      if (message.method === "notifications/cancelled") {
        const id = message.params.requestId;
        const owner = await ownerOf(ctx, auth);
        runningOf(ctx.app).get(`${owner}\n${JSON.stringify(id)}`)?.abort();
      }
      return new Response(null, { status: 202 });
  }
  const { id, method, params } = message;
  ctx.log.outcome = `mcp ${method.slice(0, 40)}`;
  switch (method) {
    case "initialize": {
      const asked = typeof params.protocolVersion === "string" ? params.protocolVersion : "";
      return jsonResponse(rpcResult(id, {
        protocolVersion: PROTOCOL_VERSIONS.includes(asked) ? asked : PROTOCOL_VERSIONS[0],
        capabilities: { tools: { listChanged: false } },
        serverInfo: {
          name: "siliconflow-image-proxy",
          title: "SiliconFlow Image → OpenAI",
          version: VERSION,
        },
        instructions: INSTRUCTIONS,
      }));
    }
    case "ping":
      return jsonResponse(rpcResult(id, {}));
    case "tools/list":
      return jsonResponse(rpcResult(id, { tools: toolList() }));
    case "tools/call":
      return await toolsCall(ctx, id, params, await ownerOf(ctx, auth));
    default:
      return jsonResponse(
        rpcError(id, RPC.methodNotFound, `Method not found: ${method.slice(0, 60)}`),
      );
  }
}

/** One SSE frame of a stream of MCP messages (or a keep-alive). */
type McpEvent = { message: Record<string, unknown> } | { keepalive: true };

/** `tools/call`: as an event stream when the client takes one, else one JSON answer. */
async function toolsCall(
  ctx: RequestContext,
  id: RequestId,
  params: Record<string, unknown>,
  owner: string,
): Promise<Response> {
  const name = params.name;
  if (!isTool(name)) {
    return jsonResponse(
      rpcError(id, RPC.invalidParams, `Unknown tool: ${String(name).slice(0, 60)}`),
    );
  }
  const meta = isJsonObject(params._meta) ? params._meta : {};
  const token = typeof meta.progressToken === "string" || typeof meta.progressToken === "number"
    ? meta.progressToken
    : undefined;
  const cancel = new AbortController();
  const key = `${owner}\n${JSON.stringify(id)}`;
  const calls = runningOf(ctx.app);
  calls.set(key, cancel);
  const work = async (signal: AbortSignal, send?: (message: Record<string, unknown>) => void) => {
    const run: ToolRun = {
      ctx,
      signal: AbortSignal.any([signal, cancel.signal]),
      progress: (progress, text, total) => {
        if (token === undefined || !send) return;
        const note = { progressToken: token, progress, message: text };
        send(rpcNotification("notifications/progress", total ? { ...note, total } : note));
      },
    };
    try {
      return await callTool(name, params.arguments, run);
    } finally {
      if (calls.get(key) === cancel) calls.delete(key);
    }
  };
  const accept = ctx.request.headers.get("accept") ?? "";
  if (!accept.includes("text/event-stream")) {
    return jsonResponse(rpcResult(id, await work(ctx.signal)));
  }
  return await streamAnswer<McpEvent>(ctx, {
    encoder: {
      encode: (event) =>
        "keepalive" in event
          ? ": keepalive\n\n"
          : `event: message\ndata: ${JSON.stringify(event.message)}\n\n`,
    },
    keepAlive: () => ({ keepalive: true }),
    failureEvents: (error) => [{
      message: rpcResult(
        id,
        {
          content: [{ type: "text", text: error.message }],
          isError: true,
        } satisfies ToolResult,
      ),
    }],
  }, async (out, signal) => {
    const result = await work(signal, (message) => out.send({ message }));
    out.send({ message: rpcResult(id, result) });
  });
}
