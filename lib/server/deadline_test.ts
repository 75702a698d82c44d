import { assert, assertEquals } from "@std/assert";
import { after, deadline } from "./deadline.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("after(): limits of one length fire once each, in order, unless cancelled", async () => {
  const fired: number[] = [];
  const cancels: (() => void)[] = [];
  for (let i = 0; i < 5000; i++) cancels.push(after(30, () => fired.push(i)));
  // Cancel nine in ten, which compacts the queue several times over.
  for (let i = 0; i < 5000; i++) if (i % 10) cancels[i]();
  await sleep(80);
  assertEquals(fired, [...Array(500).keys()].map((i) => i * 10));
  for (const cancel of cancels) cancel(); // after firing: nothing happens
  assertEquals(fired.length, 500);
});

Deno.test("after(): a callback may set and cancel limits; none fires early or twice", async () => {
  const started = performance.now();
  const times: number[] = [];
  const late = after(40, () => times.push(-1));
  after(20, () => {
    times.push(performance.now() - started);
    late();
    after(20, () => times.push(performance.now() - started));
  });
  await sleep(90);
  assertEquals(times.length, 2);
  assert(times[0] >= 19 && times[1] >= 39, `${times}`);
});

Deno.test("after(): a timer left armed on an empty queue never keeps the process up (unref'd)", () => {
  // Deno's test sanitizer fails this test if a timer is left behind.
  const cancels = [after(60_000, () => {}), after(60_000, () => {}), after(5, () => {})];
  for (const cancel of cancels) cancel();
});

Deno.test("deadline(): aborts at the time or with the parent; clear() stops both", async () => {
  const timed = deadline(10);
  await sleep(30);
  assert(timed.signal.aborted && timed.timedOut());
  timed.clear();
  const parent = new AbortController();
  const joined = deadline(60_000, parent.signal);
  parent.abort(new Error("gone"));
  assert(joined.signal.aborted && !joined.timedOut());
  assertEquals((joined.signal.reason as Error).message, "gone");
  joined.clear();
});
