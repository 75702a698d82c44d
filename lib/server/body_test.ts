import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { decodeUtf8, readBody, readJson, readLimited, readResponse } from "./body.ts";
import { BodyShare } from "./body.ts";
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

Deno.test("readLimited: every byte, or undefined past the limit", async () => {
  assertEquals((await readLimited(chunked(10_000, 1000), 20_000))!.byteLength, 10_000);
  assertEquals(await readLimited(chunked(10_000, 1000), 5000), undefined);
});

Deno.test("readLimited: a declared length fills one buffer of that size; spent chunks are freed", async () => {
  const bytes = await readLimited(chunked(1_000_000, 4096), 2_000_000, { declared: 1_000_000 });
  assertEquals(bytes!.buffer.byteLength, 1_000_000, "no second, joined copy");
  const wrong = await readLimited(chunked(10_000, 1000), 20_000, { declared: 5000 });
  assertEquals(wrong!.byteLength, 10_000, "a wrong length still gives every byte");
  const spent = [new Uint8Array([1, 2, 3]), new Uint8Array([4, 5])];
  const joined = await readLimited(ReadableStream.from(spent), 10, {
    declared: 5,
    releaseChunks: true,
  });
  assertEquals(joined, new Uint8Array([1, 2, 3, 4, 5]));
  assertEquals(spent.map((c) => c.buffer.detached), [true, true]);
});

Deno.test("readBody: 413 past the limit, 408 when the body stalls, the budget grows as it comes", async () => {
  const budget = { held: 0, limit: 1 << 30 };
  const limits = (maxBytes: number, timeoutMs = 5_000) => ({
    maxBytes,
    timeoutMs,
    share: new BodyShare(budget),
  });
  const post = (body: ReadableStream<Uint8Array>) =>
    new Request("http://x/", { method: "POST", body });
  const share = limits(20_000);
  assertEquals((await readBody(post(chunked(10_000, 1000)), share)).byteLength, 10_000);
  assertEquals(budget.held, 10_000);
  share.share.release();
  const big = await assertRejects(
    () => readBody(post(chunked(10_000, 1000)), limits(5000)),
    ApiError,
  );
  assertEquals([big.status, big.code], [413, "request_too_large"]);
  let cancelled = false;
  const stalled = new ReadableStream<Uint8Array>({
    start: (c) => c.enqueue(new Uint8Array(10)),
    cancel: () => void (cancelled = true),
  });
  const slow = await assertRejects(() => readBody(post(stalled), limits(5000, 50)), ApiError);
  assertEquals([slow.status, slow.code], [408, "request_timeout"]);
  assertEquals(cancelled, true, "the stalled body is let go");
  // A small declared body is read in one call, and raced against the same time limit.
  const small = new Request("http://x/", {
    method: "POST",
    body: new ReadableStream({ start: (c) => c.enqueue(new Uint8Array(10)) }),
    headers: { "content-length": "100" },
  });
  const smallSlow = await assertRejects(() => readBody(small, limits(5000, 50)), ApiError);
  assertEquals([smallSlow.status, smallSlow.code], [408, "request_timeout"]);
  const whole = new Request("http://x/", {
    method: "POST",
    body: "0123456789",
    headers: { "content-length": "10" },
  });
  assertEquals((await readBody(whole, limits(5000))).byteLength, 10);
});

Deno.test("decodeUtf8: valid text as it is (a real U+FFFD included); invalid bytes are a 400", () => {
  const valid = "a cat �, 一只猫 🐈";
  assertEquals(decodeUtf8(new TextEncoder().encode(valid)), valid);
  for (const bad of [[0xff], [0x61, 0xc3], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
    const err = assertThrows(() => decodeUtf8(new Uint8Array(bad)), ApiError);
    assertEquals(err.status, 400);
  }
});

Deno.test("readResponse: a fetched body whole, or undefined past the limit", async () => {
  const payload = new Uint8Array(300_000).map((_, i) => i % 251);
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const short = new URL(req.url).pathname === "/short";
    return new Response(short ? payload.subarray(0, 1000) : payload);
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  assertEquals(await readResponse(await fetch(`${url}/`), 1 << 20), payload);
  assertEquals(await readResponse(await fetch(`${url}/`), 1000), undefined, "past the limit");
  // A body of no declared length is counted as it comes.
  const plain = () =>
    new Response(ReadableStream.from([payload.subarray(0, 70_000), payload.subarray(70_000)]));
  assertEquals(await readResponse(plain(), 1 << 20), payload);
  assertEquals(await readResponse(plain(), 100_000), undefined);
});

Deno.test("readJson: a body of white space alone is empty; white space around JSON is fine", async () => {
  const limits = () => ({
    maxBytes: 1 << 20,
    timeoutMs: 5_000,
    share: new BodyShare({ held: 0, limit: 1 << 30 }),
  });
  const request = (body: string) => new Request("http://x/", { method: "POST", body });
  for (const blank of ["", " ", "\n\t\r", "\u3000\ufeff\u00a0 \u2028"]) {
    const err = await assertRejects(() => readJson(request(blank), limits()), ApiError);
    assertEquals([err.status, err.code], [400, "invalid_json"]);
    assertEquals(blank.trim(), "", "the same white space String.prototype.trim removes");
  }
  assertEquals(await readJson(request('\ufeff {"a": 1}\n'), limits()), { a: 1 });
});
