/**
 * Building responses: JSON (streamed when it carries large images) and OpenAI-shaped errors.
 * @module
 */
import type { ApiError } from "./errors.ts";
import { jsonBody } from "./json_body.ts";

/** The content type of every JSON answer. */
const JSON_TYPE = "application/json; charset=utf-8";

/** A JSON response; one that carries large images (`b64_json`, data URIs) is streamed. */
export function jsonResponse(
  body: unknown,
  status = 200,
  headers: Readonly<Record<string, string>> = {},
): Response {
  return new Response(jsonBody(body), {
    status,
    headers: { ...headers, "content-type": JSON_TYPE },
  });
}

/** The JSON response for an error, with its own headers (`Retry-After`) added. */
export function errorResponse(
  err: ApiError,
  headers: Readonly<Record<string, string>> = {},
): Response {
  return jsonResponse(err.toJSON(), err.status, { ...headers, ...err.headers });
}
