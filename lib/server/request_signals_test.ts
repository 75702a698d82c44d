import { assert, assertEquals } from "@std/assert";
import { deadline } from "./deadline.ts";
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

Deno.test("RequestSignals: a deadline joined with a request's signal follows it without a listener, and lets go when cleared", () => {
  const shutdown = new AbortController();
  const signals = new RequestSignals(shutdown.signal);
  const client = new AbortController();
  const gone = signals.lazy(new Request("http://x/", { signal: client.signal }));
  const cleared = deadline(60_000, gone.signal);
  const followed = deadline(60_000, gone.signal);
  cleared.clear();
  client.abort(new Error("client left"));
  assert(followed.signal.aborted && !followed.timedOut());
  assertEquals((followed.signal.reason as Error).message, "client left");
  assert(!cleared.signal.aborted, "a cleared deadline no longer follows");
  followed.clear();

  const running = signals.lazy(new Request("http://x/"));
  const limit = deadline(60_000, running.signal);
  shutdown.abort(new Error("grace over"));
  assert(limit.signal.aborted);
  assertEquals((limit.signal.reason as Error).message, "grace over");
  limit.clear();
});
