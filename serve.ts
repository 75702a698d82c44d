/**
 * The server as a default export, for `deno serve serve.ts` (and `deno task start:parallel`) and
 * Deno Deploy, which listen themselves. `main.ts` is the entry point that listens on its own.
 * @module
 */
import { boot } from "./lib/boot.ts";

const { handler, announce } = await boot([]);

/** The handler, and the start-up line once `deno serve` listens. */
const served: Deno.ServeDefaultExport = {
  fetch: handler,
  onListen(addr) {
    announce(addr as Deno.NetAddr, "deno serve");
  },
};
export default served;
