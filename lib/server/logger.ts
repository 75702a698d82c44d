/**
 * One log line per request, as text or JSON. Callers pass only what is safe to print: keys and
 * image data never reach a log record.
 * @module
 */

/** Severity of a record, and the least severity `LOG_LEVEL` lets through. */
export type LogLevel = "info" | "warn" | "error";

/** One log record. */
export interface LogRecord {
  /** Severity. */
  level: LogLevel;
  /** Short description. */
  msg: string;
  /** Structured fields. */
  [field: string]: unknown;
}

/** Where log records go. */
export type Logger = (record: LogRecord) => void;

const RANK: Readonly<Record<LogLevel, number>> = { info: 0, warn: 1, error: 2 };

const encoder = new TextEncoder();

/** Writes a line to stdout; a closed stdout loses the line, and the server goes on. */
export function stdoutLines(line: string): void {
  const bytes = encoder.encode(line + "\n");
  try {
    for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
  } catch {
    // stdout is gone (a closed pipe).
  }
}

/**
 * A logger that writes one line per record to `write` (stdout by default), leaving
 * out records below `least` (`LOG_LEVEL`).
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
  write: (line: string) => void = stdoutLines,
  now: () => number = Date.now,
  least: LogLevel = "info",
): Logger {
  return (record) => {
    if (RANK[record.level] < RANK[least]) return;
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

/** What went wrong, short enough for a log line's `error` field: an error's message, or the value. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message.slice(0, 200) : String(err);
}
