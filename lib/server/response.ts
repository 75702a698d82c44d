/**
 * Building responses: JSON (streamed when it carries large images) and OpenAI-shaped errors.
 * @module
 */
import type { ApiError } from "./errors.ts";
import { jsonBody } from "./json_body.ts";

/** The content type of every JSON answer. */
const JSON_TYPE = "application/json; charset=utf-8";

/** A JSON response; one that carries large images (`b64_json`, data URIs) is streamed. */
export function jsonResponse(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  const h = new Headers(headers);
  h.set("content-type", JSON_TYPE);
  return new Response(jsonBody(body), { status, headers: h });
}

/** The JSON response for an error, with its own headers (`Retry-After`) added. */
export function errorResponse(err: ApiError, headers: HeadersInit = {}): Response {
  const h = new Headers(headers);
  for (const [k, v] of Object.entries(err.headers)) h.set(k, v);
  return jsonResponse(err.toJSON(), err.status, h);
}
