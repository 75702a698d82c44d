/**
 * The server entry point. `deno task start` and the compiled binary run it, and it calls
 * `Deno.serve`; `deno serve main.ts` and Deno Deploy use its default export instead.
 * @module
 */
import { helpText, parseCli } from "./lib/cli.ts";
import { ConfigError, loadConfig } from "./lib/config.ts";
import { createHandler } from "./lib/handler.ts";
import { VERSION } from "./lib/version.ts";

function fail(message: string): never {
  console.error(`siliconflow-image-proxy: ${message}`);
  Deno.exit(2);
}

const cli = (() => {
  try {
    return parseCli(import.meta.main ? Deno.args : []);
  } catch (err) {
    if (err instanceof ConfigError && import.meta.main) fail(err.message);
    throw err;
  }
})();
if (cli.help) {
  console.log(helpText(VERSION));
  Deno.exit(0);
}
if (cli.version) {
  console.log(VERSION);
  Deno.exit(0);
}

const config = (() => {
  try {
    return loadConfig((name) => cli.env[name] ?? Deno.env.get(name));
  } catch (err) {
    if (err instanceof ConfigError && import.meta.main) fail(err.message);
    throw err;
  }
})();

const handler = createHandler({ config });

// `deno serve` calls this before any timer runs; main() below then leaves the serving to it.
let servedByDenoServe = false;

/** The handler for `deno serve main.ts` and Deno Deploy. */
const serveExport: Deno.ServeDefaultExport = {
  fetch: handler,
  onListen() {
    servedByDenoServe = true;
  },
};
export default serveExport;

if (import.meta.main && !Deno.env.get("DENO_DEPLOYMENT_ID")) {
  setTimeout(() => {
    if (servedByDenoServe) return;
    Deno.serve({
      port: config.port,
      hostname: config.host,
      onListen: ({ hostname, port }) => {
        const shown = hostname === "0.0.0.0" ? "localhost" : hostname;
        console.log(
          `siliconflow-image-proxy ${VERSION} listening on http://${shown}:${port}/v1` +
            (config.demo ? " (demo mode: no key or network needed)" : ` → ${config.baseUrl}`),
        );
      },
    }, handler);
  }, 0);
}
