/**
 * Starting the server, shared by the two entry modules: `main.ts` (`deno run`, the binary, which
 * listens itself) and `serve.ts` (`deno serve`, Deno Deploy, which take its default export). The
 * command line, the configuration, the permission check, the handler, and the start-up line. A
 * bad configuration stops the process with a message naming the variable, before anything starts.
 * @module
 */
import { helpText, parseCli } from "./cli.ts";
import { type Config, ConfigError, displayUrl, loadConfig } from "./config.ts";
import { createHandler, type Handler } from "./handler.ts";
import { preloadRoutes } from "./openai/routes.ts";
import { preloadMcp } from "./mcp/routes.ts";
import { missingPermission } from "./permissions.ts";
import { createLogger, type Logger, stdoutLines } from "./server/logger.ts";
import { soon } from "./time_limit.ts";
import { VERSION } from "./version.ts";

/** A started server's parts, for the entry module to serve. */
export interface Booted {
  /** The configuration. */
  config: Config;
  /** The request handler. */
  handler: Handler;
  /** The request logger. */
  logger: Logger;
  /** Aborting it ends every in-flight generation (the shutdown grace has run out). */
  shutdown: AbortController;
  /** Prints the start-up line for a listener, and loads the rest of the server just after. */
  announce(addr: Deno.NetAddr, how: string): void;
  /** Prints a line of the server's own (start-up, shutdown), whatever `LOG_LEVEL` says. */
  say(msg: string): void;
  /** `--mcp`: MCP over stdin and stdout (the log on stderr). */
  mcp: boolean;
}

/**
 * What `--mcp` assumes unless set: the key in `SILICONFLOW_API_KEY` is the user's own, used by the
 * one client that launched the process; only loopback listens (for the stored images' links).
 */
const MCP_DEFAULTS: Readonly<Record<string, string>> = { HOST: "127.0.0.1", LOG_LEVEL: "warn" };

/** One line to stderr (stdout carries the protocol in `--mcp` mode). */
function stderrLines(line: string): void {
  console.error(line);
}

/** Start-up failures are printed before the configuration exists: LOG_FORMAT is read raw. */
function fail(message: string, flags: Record<string, string> = {}): never {
  const raw = flags.LOG_FORMAT ?? Deno.env.get("LOG_FORMAT");
  const line = `siliconflow-image-proxy: ${message}`;
  console.error(
    raw?.trim().toLowerCase() === "json"
      ? JSON.stringify({ time: new Date().toISOString(), level: "error", msg: line })
      : line,
  );
  Deno.exit(2);
}

/** How long after listening the rest of the server loads. */
const PRELOAD_AFTER_MS = 20;

/** What the start-up line says of the keys: who may call, and who pays. */
function keysLine(config: Config): string {
  if (config.demo) return "no key needed (demo)";
  const managed = config.adminApiKey ? " + managed keys" : "";
  return `${config.keyMode}${managed}`;
}

/**
 * Reads the command line and the environment, checks what the configuration needs against the
 * process's permissions, and builds the handler. `--help` and `--version` print and exit.
 */
export async function boot(args: string[]): Promise<Booted> {
  let cli: Awaited<ReturnType<typeof parseCli>>;
  try {
    cli = await parseCli(args);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  if (cli.help) {
    console.log(helpText(VERSION));
    Deno.exit(0);
  }
  if (cli.version) {
    console.log(VERSION);
    Deno.exit(0);
  }
  const given = (name: string) => cli.env[name] ?? Deno.env.get(name);
  const get = (name: string) => {
    const value = given(name);
    if (value !== undefined || !cli.mcp) return value;
    if (name === "ALLOW_ANONYMOUS" && given("SILICONFLOW_API_KEY")) return "true";
    return MCP_DEFAULTS[name];
  };
  let config: Config;
  try {
    config = loadConfig(get, { dataDir: true });
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, cli.env);
    throw err;
  }
  // A path or service the user configured that this process may not use stops it here, saying
  // what to grant, rather than failing quietly later.
  const denied = missingPermission(config, (name) => given(name) !== undefined);
  if (denied) fail(denied, cli.env);

  const shutdown = new AbortController();
  const write = cli.mcp ? stderrLines : stdoutLines;
  const logger = createLogger(config.logFormat, write, undefined, config.logLevel);
  // The start-up and shutdown lines are printed whatever LOG_LEVEL says.
  const announcer = createLogger(config.logFormat, write);
  const handler = createHandler({
    config,
    logger,
    shutdownSignal: shutdown.signal,
    resumeVideoJobs: true,
  });
  const say = (msg: string) => {
    if (config.logFormat === "json") announcer({ level: "info", msg });
    else write(msg);
  };
  const announce = ({ hostname, port }: Deno.NetAddr, how: string) => {
    // What start-up left out loads once the first requests are answered: the routes that
    // validate with zod (see lib/openai/routes.ts).
    soon(PRELOAD_AFTER_MS, () => Promise.all([preloadRoutes(), preloadMcp()]).catch(() => {}));
    const shown = hostname === "0.0.0.0" ? "localhost" : hostname;
    const origin = `http://${shown}:${port}`;
    say(
      `siliconflow-image-proxy ${VERSION} listening on ${origin}/v1 (${how})` +
        (config.demo
          ? " (demo mode: the built-in stand-in, no network)"
          : ` → ${displayUrl(config.baseUrl)}`) +
        ` [keys: ${keysLine(config)}]` +
        (config.playground ? `; playground: ${origin}/` : ""),
    );
  };
  return { config, handler, logger, shutdown, announce, say, mcp: cli.mcp };
}
