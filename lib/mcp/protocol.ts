/**
 * The parts of the Model Context Protocol this server speaks (2025-06-18 and 2025-11-25, and
 * 2025-03-26 for older clients): JSON-RPC 2.0 messages, the versions, the error codes, and the
 * `Origin`/`Host` check that keeps a web page from reaching a local server through DNS rebinding.
 * Written directly rather than with the official SDK, whose server side brings 95 npm packages
 * (31 MB) and about 200 ms of start-up (see the README's dependencies).
 * @module
 */
import { isJsonObject } from "../values.ts";

/** The protocol versions this server speaks, newest first. */
export const PROTOCOL_VERSIONS: readonly string[] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/** JSON-RPC's error codes. */
export const RPC = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
} as const;

/** A request's id: a string or a number (never null). */
export type RequestId = string | number;

/** One JSON-RPC message as a client sends it. */
export type ClientMessage =
  | { kind: "request"; id: RequestId; method: string; params: Record<string, unknown> }
  | { kind: "notification"; method: string; params: Record<string, unknown> }
  | { kind: "response" };

/** A JSON-RPC message, or the error to answer a malformed one with. */
export function parseMessage(
  body: unknown,
): ClientMessage | { kind: "invalid"; id: RequestId | null; message: string } {
  if (!isJsonObject(body) || body.jsonrpc !== "2.0") {
    return { kind: "invalid", id: null, message: "Not a JSON-RPC 2.0 message" };
  }
  const id = typeof body.id === "string" || typeof body.id === "number" ? body.id : undefined;
  if (body.method === undefined && ("result" in body || "error" in body)) {
    return { kind: "response" };
  }
  if (typeof body.method !== "string") {
    return { kind: "invalid", id: id ?? null, message: "A JSON-RPC request needs a method" };
  }
  if (body.params !== undefined && !isJsonObject(body.params)) {
    return { kind: "invalid", id: id ?? null, message: "params must be an object" };
  }
  const params = (body.params ?? {}) as Record<string, unknown>;
  if (body.id === undefined) return { kind: "notification", method: body.method, params };
  if (id === undefined) {
    return { kind: "invalid", id: null, message: "id must be a string or a number" };
  }
  return { kind: "request", id, method: body.method, params };
}

/** A JSON-RPC result. */
export function rpcResult(id: RequestId, result: unknown): Record<string, unknown> {
  return { jsonrpc: "2.0", id, result };
}

/** A JSON-RPC error. */
export function rpcError(
  id: RequestId | null,
  code: number,
  message: string,
): Record<string, unknown> {
  return { jsonrpc: "2.0", id, error: { code, message } };
}

/** A notification from the server. */
export function rpcNotification(
  method: string,
  params: Record<string, unknown>,
): Record<string, unknown> {
  return { jsonrpc: "2.0", method, params };
}

/** Whether a host name (no port) is this machine's. */
function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host.endsWith(".localhost") || host === "::1" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The host name of a `Host` header value (`name:port`, `[v6]:port`). */
function hostnameOf(host: string): string {
  return URL.canParse(`http://${host}`) ? new URL(`http://${host}`).hostname : host;
}

/** What the `Origin`/`Host` check needs to know. */
export interface OriginPolicy {
  /** The address the server listens on (`HOST`). */
  listenHost: string;
  /** Extra host names (and origins' host names) allowed (`MCP_ALLOWED_HOSTS`; `*` for any). */
  allowedHosts: readonly string[];
  /** `PUBLIC_BASE_URL`, whose host is always allowed. */
  publicBaseUrl?: string;
}

/**
 * Why a request must be refused (DNS rebinding), or undefined. A browser's `Origin` must be this
 * server's own origin (its `Host`), a loopback one, or an allowed host. On a server listening on a
 * loopback address, the `Host` itself must be a loopback name or an allowed one: a page whose name
 * was made to resolve to 127.0.0.1 is refused.
 */
export function originRefusal(request: Request, policy: OriginPolicy): string | undefined {
  const allowed = new Set(policy.allowedHosts.map((h) => h.toLowerCase()));
  if (allowed.has("*")) return undefined;
  if (policy.publicBaseUrl) allowed.add(new URL(policy.publicBaseUrl).hostname.toLowerCase());
  const host = request.headers.get("host") ?? new URL(request.url).host;
  const hostname = hostnameOf(host).toLowerCase();
  const ok = (name: string) => isLoopback(name) || allowed.has(name);
  if (isLoopback(policy.listenHost) && !ok(hostname)) {
    return `Host ${hostname.slice(0, 100)} is not this server's (a DNS rebinding attempt?)`;
  }
  const origin = request.headers.get("origin");
  if (origin === null) return undefined; // not a browser
  const from = URL.canParse(origin) ? new URL(origin) : undefined;
  if (
    !from || (from.host.toLowerCase() !== host.toLowerCase() && !ok(from.hostname.toLowerCase()))
  ) {
    return `Origin ${origin.slice(0, 100)} may not call this server's MCP endpoint`;
  }
  return undefined;
}
