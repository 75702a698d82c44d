import { assert, assertEquals } from "@std/assert";
import { RequestSignals } from "./request_signals.ts";

Deno.test("RequestSignals: a request's signal aborts with its client or with shutdown, and is forgotten when done", () => {
  const shutdown = new AbortController();
  const signals = new RequestSignals(shutdown.signal);
  const client = new AbortController();
  const gone = signals.lazy(new Request("http://x/", { signal: client.signal }));
  const running = signals.lazy(new Request("http://x/"));
  const finished = signals.lazy(new Request("http://x/"));
  const untouched = signals.lazy(new Request("http://x/"));
  assert(!gone.signal.aborted && !running.signal.aborted && !finished.signal.aborted);
  assertEquals(signals.size, 3, "a signal is made only when asked for");
  client.abort(new Error("client left"));
  assert(gone.signal.aborted);
  assertEquals((gone.signal.reason as Error).message, "client left");
  finished.done();
  untouched.done();
  assertEquals(signals.size, 1);
  shutdown.abort(new Error("grace over"));
  assert(running.signal.aborted && !finished.signal.aborted);
  assertEquals(signals.size, 0);
  // Asked for after shutdown: aborted at once.
  assert(signals.lazy(new Request("http://x/")).signal.aborted);
});
