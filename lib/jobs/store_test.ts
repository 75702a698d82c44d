import { assertEquals } from "@std/assert";
import { ApiError } from "../server/errors.ts";
import { JobStore } from "./store.ts";

Deno.test("JobStore.newCreated: jobs made in the same millisecond still list in the order made", async () => {
  let clock = 1_000;
  const store = new JobStore("video", ":memory:", {
    now: () => clock,
    retentionMs: 60_000,
    unavailable: (err) => new ApiError(503, "unavailable", { cause: err }),
  });
  assertEquals([store.newCreated(), store.newCreated(), store.newCreated()], [1_000, 1_001, 1_002]);
  clock = 5_000;
  assertEquals(store.newCreated(), 5_000);
  await store.close();
});
