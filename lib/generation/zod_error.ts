/**
 * A zod failure as the 400 that names the field at fault, for every schema of the server (the
 * model parameters, and the shapes of the OpenAI requests).
 * @module
 */
import type { z } from "zod";
import { invalidParam } from "../server/errors.ts";
import type { ApiError } from "../server/errors.ts";

/** Formats a zod issue path as `messages[0].content`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    out += typeof key === "number" ? `[${key}]` : `${out ? "." : ""}${String(key)}`;
  }
  return out || "body";
}

/**
 * Turns a zod failure into a 400 that names the field. `rename` maps a field to the name the
 * client used for it (a synonym), and `describe` words the message.
 */
export function zodError(
  error: z.ZodError,
  options: {
    rename?: Readonly<Record<string, string>>;
    describe?: (param: string, message: string) => string;
  } = {},
): ApiError {
  const issue = error.issues[0];
  const path = formatPath(issue.path);
  const param = options.rename?.[path] ?? path;
  const describe = options.describe ?? ((p, m) => `Invalid ${p}: ${m}`);
  return invalidParam(param, describe(param, issue.message));
}
