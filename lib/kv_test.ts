import { assertEquals, assertInstanceOf, assertRejects } from "@std/assert";
import { ApiError } from "./server/errors.ts";
import { LazyKv } from "./kv.ts";

const outage = (err: unknown) =>
  new ApiError(503, "down", { code: "store_unavailable", cause: err });

Deno.test("LazyKv: a call the store refuses for its arguments is a bug (TypeError), not an outage", async () => {
  const kv = new LazyKv(":memory:", outage);
  try {
    const refused = await assertRejects(() =>
      kv.guard((db) => db.getMany(Array.from({ length: 11 }, (_, i) => ["k", i])))
    );
    assertInstanceOf(refused, TypeError);
    const down = await assertRejects(() => kv.guard(() => Promise.reject(new Error("io"))));
    assertInstanceOf(down, ApiError);
    assertEquals((down as ApiError).code, "store_unavailable");
  } finally {
    await kv.close();
  }
});
