import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { decodeUtf8, readJson, readLimited, release } from "./body.ts";
import { readResponse } from "./fetched_body.ts";
import { BodyBudget, BodyShare } from "./body_budget.ts";
import { ApiError } from "./errors.ts";

function chunked(total: number, chunk: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(c) {
      if (sent >= total) return c.close();
      const n = Math.min(chunk, total - sent);
      c.enqueue(new Uint8Array(n).fill(sent % 251));
      sent += n;
    },
  });
}

Deno.test("readLimited: with a size hint, many chunks land in one buffer of exactly that size", async () => {
  const bytes = await readLimited(chunked(1_000_000, 4096), {
    limit: 2_000_000,
    sizeHint: 1_000_000,
  });
  assertEquals(bytes!.byteLength, 1_000_000);
  assertEquals(bytes!.buffer.byteLength, 1_000_000, "no second, joined copy");
  assertEquals(bytes!.byteOffset, 0);
});

Deno.test("readLimited: a wrong hint still gives every byte", async () => {
  assertEquals(
    (await readLimited(chunked(10_000, 1000), { limit: 20_000, sizeHint: 5000 }))!.byteLength,
    10_000,
  );
  assertEquals(
    (await readLimited(chunked(3000, 1000), { limit: 20_000, sizeHint: 5000 }))!.byteLength,
    3000,
  );
});

Deno.test("readLimited: past the limit it stops and says so; an abort is thrown", async () => {
  assertEquals(await readLimited(chunked(10_000, 1000), { limit: 5000 }), undefined);
  const controller = new AbortController();
  const never = new ReadableStream<Uint8Array>({ pull: () => new Promise(() => {}) });
  const reading = readLimited(never, { limit: 5000, signal: controller.signal });
  controller.abort(new Error("too slow"));
  await assertRejects(() => reading, Error, "too slow");
});

Deno.test("decodeUtf8: valid text as it is (a real U+FFFD included); invalid bytes are a 400", () => {
  const valid = "a cat �, 一只猫 🐈";
  assertEquals(decodeUtf8(new TextEncoder().encode(valid)), valid);
  for (const bad of [[0xff], [0x61, 0xc3], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
    const err = assertThrows(() => decodeUtf8(new Uint8Array(bad)), ApiError);
    assertEquals(err.status, 400);
  }
});

Deno.test("readResponse: a fetched body of a known length, read into one buffer, whole or short", async () => {
  const payload = new Uint8Array(300_000).map((_, i) => i % 251);
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const short = new URL(req.url).pathname === "/short";
    return new Response(short ? payload.subarray(0, 1000) : payload);
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  assertEquals(await readResponse(await fetch(`${url}/`), 1 << 20), payload);
  assertEquals(await readResponse(await fetch(`${url}/`), 1000), undefined, "past the limit");
  // A stream that is not a byte stream is read chunk by chunk.
  const plain = new Response(
    ReadableStream.from([payload.subarray(0, 70_000), payload.subarray(70_000)]),
    {
      headers: { "content-length": String(payload.length) },
    },
  );
  assertEquals(await readResponse(plain, 1 << 20), payload);
});

Deno.test("readJson: a body of white space alone is empty; white space around JSON is fine", async () => {
  const limits = () => ({
    maxBytes: 1 << 20,
    timeoutMs: 5_000,
    share: new BodyShare(new BodyBudget(1 << 30)),
  });
  const request = (body: string) => new Request("http://x/", { method: "POST", body });
  for (const blank of ["", " ", "\n\t\r", "\u3000\ufeff\u00a0 \u2028"]) {
    const err = await assertRejects(() => readJson(request(blank), limits()), ApiError);
    assertEquals([err.status, err.code], [400, "invalid_json"]);
    assertEquals(blank.trim(), "", "the same white space String.prototype.trim removes");
  }
  assertEquals(await readJson(request('\ufeff {"a": 1}\n'), limits()), { a: 1 });
});

Deno.test("release frees bytes that start their buffer; readLimited frees its chunks only when told", async () => {
  const whole = new Uint8Array(16);
  release(whole);
  assertEquals(whole.buffer.detached, true);
  const big = new Uint8Array(16);
  const inner = big.subarray(4);
  release(inner);
  assertEquals(big.buffer.detached, false, "a view into the middle of a buffer is left alone");
  release(whole); // twice is harmless

  const chunks = () => [new Uint8Array([1, 2, 3]), new Uint8Array([4, 5])];
  const kept = chunks();
  const bytes = await readLimited(ReadableStream.from(kept), { limit: 10, sizeHint: 5 });
  assertEquals(bytes, new Uint8Array([1, 2, 3, 4, 5]));
  assertEquals(kept.map((c) => c.buffer.detached), [false, false]);
  const spent = chunks();
  const again = await readLimited(ReadableStream.from(spent), {
    limit: 10,
    sizeHint: 5,
    releaseChunks: true,
  });
  assertEquals(again, new Uint8Array([1, 2, 3, 4, 5]));
  assertEquals(spent.map((c) => c.buffer.detached), [true, true]);
});
