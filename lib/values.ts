/**
 * Small checks on loose request values, written once: "present", "a JSON object", and a value
 * picked from a fixed set of names.
 * @module
 */

/** `bytes` random bytes as base64url text without padding (an unguessable id). */
export function randomToken(bytes: number): string {
  const random = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...random)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

/** Whether a value was given: not undefined, null or "". */
export function present(value: unknown): boolean {
  return value !== undefined && value !== null && value !== "";
}

/** Whether a value is a JSON object (not null, not an array). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return !!value && typeof value === "object" && !Array.isArray(value);
}

/**
 * The value a name stands for in `choices` (case-insensitive), or undefined when `raw` is not
 * one of its names. Only strings and booleans are names; own keys only, so `constructor` is none.
 */
export function parseChoice<T>(raw: unknown, choices: Readonly<Record<string, T>>): T | undefined {
  if (typeof raw !== "string" && typeof raw !== "boolean") return undefined;
  const key = String(raw).trim().toLowerCase();
  return Object.hasOwn(choices, key) ? choices[key] : undefined;
}

/** Like {@link parseChoice}, but `fallback` when no value is given at all. */
export function choiceOr<T>(
  raw: unknown,
  choices: Readonly<Record<string, T>>,
  fallback: T,
): T | undefined {
  return present(raw) ? parseChoice(raw, choices) : fallback;
}
