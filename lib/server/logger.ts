/**
 * One log line per request, as text or JSON. Callers pass only what is safe to print: keys and
 * image data never reach a log record.
 * @module
 */

/** One log record. */
export interface LogRecord {
  /** Severity. */
  level: "info" | "warn" | "error";
  /** Short description. */
  msg: string;
  /** Structured fields. */
  [field: string]: unknown;
}

/** Where log records go. */
export type Logger = (record: LogRecord) => void;

/**
 * A logger that writes one line per record to `write` (stdout by default).
 *
 * @example Collect JSON lines
 * ```ts
 * import { createLogger } from "../../mod.ts";
 *
 * const lines: string[] = [];
 * const log = createLogger("json", (line) => lines.push(line), () => 0);
 * log({ level: "info", msg: "POST /v1/chat/completions", status: 200 });
 * console.assert(JSON.parse(lines[0]).status === 200);
 * ```
 */
export function createLogger(
  format: "text" | "json",
  write: (line: string) => void = (line) => console.log(line),
  now: () => number = Date.now,
): Logger {
  return (record) => {
    const time = new Date(now()).toISOString();
    if (format === "json") {
      write(JSON.stringify({ time, ...record }));
      return;
    }
    const { level, msg, ...fields } = record;
    const rest = Object.entries(fields)
      .filter(([, v]) => v !== undefined && v !== null && v !== "")
      .map(([k, v]) => `${k}=${typeof v === "string" && !/\s/.test(v) ? v : JSON.stringify(v)}`)
      .join(" ");
    write(`${time} ${level.toUpperCase()} ${msg}${rest ? ` ${rest}` : ""}`);
  };
}
