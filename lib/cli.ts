/**
 * Command-line flags of the compiled binary (and `main.ts`). Each flag mirrors an environment
 * variable and wins over it. Keys have no flags on purpose: a command line is visible to every
 * user of the machine (`ps`), so they come from the environment only.
 * @module
 */
import { ConfigError } from "./config.ts";

/** Flag name → environment variable it mirrors. */
export const FLAG_ENV: Readonly<Record<string, string>> = {
  "port": "PORT",
  "host": "HOST",
  "base-url": "SILICONFLOW_BASE_URL",
  "timeout-ms": "UPSTREAM_TIMEOUT_MS",
  "keepalive-ms": "KEEPALIVE_MS",
  "max-body-bytes": "MAX_BODY_BYTES",
  "max-body-buffer": "MAX_BODY_BUFFER_BYTES",
  "log-format": "LOG_FORMAT",
  "log-level": "LOG_LEVEL",
  "model-aliases": "MODEL_ALIASES",
  "image-delivery": "IMAGE_DELIVERY",
  "progress": "PROGRESS",
  "max-concurrency": "MAX_CONCURRENCY",
  "body-timeout-ms": "BODY_TIMEOUT_MS",
  "shutdown-grace-ms": "SHUTDOWN_GRACE_MS",
  "stream-hold-ms": "STREAM_HOLD_MS",
};

/** What the command line asked for. */
export interface CliOptions {
  /** `--help`. */
  help: boolean;
  /** `--version`. */
  version: boolean;
  /** `--mcp`: MCP over stdin and stdout, for desktop clients. */
  mcp: boolean;
  /** Environment overrides from flags (`--demo` sets `DEMO`). */
  env: Record<string, string>;
}

/**
 * Parses the command line; an unknown flag, a missing value or a stray word is an error naming it.
 * `node:util` loads only when there are flags: it starts Deno's Node layer (6–9 ms), which a server
 * configured through the environment (`deno task start`, `deno serve`, Deploy) loads after its
 * first answers instead (see `soon()` in `time_limit.ts`).
 */
export async function parseCli(args: string[]): Promise<CliOptions> {
  if (args.length === 0) return { help: false, version: false, mcp: false, env: {} };
  const { parseArgs } = await import("node:util");
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        ...Object.fromEntries(Object.keys(FLAG_ENV).map((flag) => [flag, { type: "string" }])),
        port: { type: "string", short: "p" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
        demo: { type: "boolean" },
        mcp: { type: "boolean" },
      },
    }));
  } catch (err) {
    throw new ConfigError("command line", `${(err as Error).message}; see --help`);
  }
  const env: Record<string, string> = {};
  for (const [flag, name] of Object.entries(FLAG_ENV)) {
    const value = values[flag];
    if (typeof value === "string") env[name] = value;
  }
  if (values.demo) env.DEMO = "true";
  return {
    help: values.help === true,
    version: values.version === true,
    mcp: values.mcp === true,
    env,
  };
}

/** The `--help` text. */
export function helpText(version: string): string {
  const flags = Object.entries(FLAG_ENV)
    .map(([flag, name]) => `  --${flag.padEnd(16)} same as ${name}`)
    .join("\n");
  return `siliconflow-image-proxy ${version}
OpenAI-compatible API for SiliconFlow's image models.

Usage: siliconflow-image-proxy [flags]

Flags (each wins over its environment variable):
${flags}
  --demo             serve from the built-in stand-in (no key, no network)
  --mcp              MCP over stdin/stdout for desktop clients (the key from SILICONFLOW_API_KEY)
  -h, --help         show this help
  -v, --version      show the version
`;
}
