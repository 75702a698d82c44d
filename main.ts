/**
 * The server entry point for `deno task start`, `deno run` and the compiled binary: it listens
 * itself (`Deno.serve`, kept alive through floods), and stops gracefully on SIGTERM and SIGINT:
 * its jobs go to the next process at once, in-flight generations get `SHUTDOWN_GRACE_MS`.
 * `deno serve` and Deno Deploy use `serve.ts`, its default export, instead.
 * @module
 */
import { boot } from "./lib/boot.ts";
import { serveResilient } from "./lib/server/listen.ts";

if (import.meta.main) {
  const booted = await boot(Deno.args);
  const { config, handler, logger, shutdown, announce, say } = booted;
  if (booted.mcp) {
    // MCP for a desktop client that launched this process: stdin and stdout until it goes.
    await (await import("./lib/mcp/stdio.ts")).runStdio(booted);
    Deno.exit(0);
  } else if (Deno.env.get("DENO_DEPLOYMENT_ID")) {
    // On Deploy the platform listens and stops: the plain Deno.serve it expects.
    Deno.serve({ onListen: (addr) => announce(addr as Deno.NetAddr, "Deno Deploy") }, handler);
  } else {
    const server = serveResilient({
      port: config.port,
      hostname: config.host,
      logger,
      onListen: (addr: Deno.NetAddr) => announce(addr, "Deno.serve"),
    }, handler);
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      say(
        `${signal}: no longer accepting; in-flight generations have ${config.shutdownGraceMs} ms`,
      );
      const grace = setTimeout(() => shutdown.abort(), config.shutdownGraceMs);
      // After the grace, streams end with an error event at once; give them a moment to flush.
      const hard = setTimeout(() => Deno.exit(1), config.shutdownGraceMs + 5_000);
      // Jobs go to the next process (or another instance) now, not when a lease would lapse.
      const handedOver = handler.handOver().catch(() => {});
      await server.shutdown();
      await handedOver;
      await handler.close().catch(() => {});
      clearTimeout(grace);
      clearTimeout(hard);
      Deno.exit(0);
    };
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      try {
        Deno.addSignalListener(signal, () => stop(signal));
      } catch {
        // SIGTERM cannot be listened for on Windows.
      }
    }
  }
}
