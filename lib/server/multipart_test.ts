import { assertEquals, assertRejects } from "@std/assert";
import fc from "fast-check";
import { BodyShare } from "./body.ts";
import { ApiError } from "./errors.ts";
import { type MultipartPart, readMultipart } from "./multipart.ts";

const limits = () => ({
  maxBytes: 1 << 24,
  timeoutMs: 5_000,
  share: new BodyShare({ held: 0, limit: 1 << 30 }),
});

/** The request, its body delivered in chunks of the given sizes (cycled). */
function request(body: Uint8Array<ArrayBuffer>, type: string, sizes: number[]): Request {
  let at = 0;
  let i = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (at >= body.length) return c.close();
      const n = Math.max(1, sizes[i++ % sizes.length]);
      c.enqueue(body.slice(at, at + n));
      at += n;
    },
  });
  return new Request("http://x/", {
    method: "POST",
    body: stream,
    headers: { "content-type": type },
  });
}

/** What the platform's parser makes of the same body: [name, filename?, bytes]. */
async function reference(body: Uint8Array<ArrayBuffer>, type: string) {
  const form = await new Response(body, { headers: { "content-type": type } }).formData();
  const out: [string, string | undefined, number[]][] = [];
  for (const [name, value] of form.entries()) {
    out.push(
      typeof value === "string"
        ? [name, undefined, [...new TextEncoder().encode(value)]]
        : [name, value.name, [...new Uint8Array(await value.arrayBuffer())]],
    );
  }
  return out;
}

const ours = (parts: MultipartPart[]) =>
  parts.map(([name, value]) =>
    (typeof value === "string"
      ? [name, undefined, [...new TextEncoder().encode(value)]]
      : [name, value.filename, [...value.bytes]]) as [string, string | undefined, number[]]
  );

Deno.test("readMultipart: the platform's answer for any form, however the body is cut", async () => {
  // Bytes that look like boundaries and line breaks, to be found inside files.
  const tricky = fc.uint8Array({ maxLength: 200 }).map((a) =>
    Uint8Array.from(a, (b) => [0x0d, 0x0a, 0x2d, b][b % 4])
  );
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          name: fc.constantFrom("model", "prompt", "image", "image[]", "名字", 'q"uote'),
          file: fc.option(fc.constantFrom("a.png", "", "猫.png"), { nil: undefined }),
          bytes: tricky,
        }),
        { maxLength: 6 },
      ),
      fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 5 }),
      async (fields, sizes) => {
        const form = new FormData();
        for (const f of fields) {
          if (f.file === undefined) form.append(f.name, new TextDecoder().decode(f.bytes));
          else form.append(f.name, new Blob([f.bytes]), f.file);
        }
        const encoded = new Response(form);
        const type = encoded.headers.get("content-type")!;
        const body = new Uint8Array(await encoded.arrayBuffer());
        const parts = await readMultipart(request(body, type, sizes), limits());
        assertEquals(ours(parts), await reference(body, type));
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("readMultipart: a preamble and an epilogue are ignored; broken bodies are 400s", async () => {
  const type = "multipart/form-data; boundary=XyZ";
  const enc = (s: string) => new TextEncoder().encode(s);
  const good = enc(
    'preamble\r\n--XyZ\r\ncontent-disposition: form-data; name="a"\r\n\r\nvalue\r\n--XyZ--\r\nepilogue',
  );
  for (const sizes of [[1], [2], [3], [1000]]) {
    const parts = await readMultipart(request(good, type, sizes), limits());
    assertEquals(ours(parts), [["a", undefined, [...enc("value")]]]);
  }
  for (
    const [bad, contentType] of [
      ['--XyZ\r\ncontent-disposition: form-data; name="a"\r\n\r\nno end', type],
      ["--XyZ\r\ncontent-type: text/plain\r\n\r\nx\r\n--XyZ--", type],
      [`--XyZ\r\ncontent-disposition: form-data; name="a"\r\nx-pad: ${"p".repeat(20_000)}`, type],
      ["no boundary at all", type],
      [
        '--XyZ\r\ncontent-disposition: form-data; name="a"\r\n\r\nx\r\n--XyZ--',
        "multipart/form-data",
      ],
    ]
  ) {
    const err = await assertRejects(
      () => readMultipart(request(enc(bad), contentType, [7]), limits()),
      ApiError,
    );
    assertEquals([err.status, err.code], [400, "invalid_multipart"], bad.slice(0, 40));
  }
});

Deno.test("readMultipart: at most MAX_MULTIPART_PARTS parts, refused at the one past it", async () => {
  const body = (n: number) =>
    new TextEncoder().encode(
      Array.from({ length: n }, (_, i) =>
        `--B\r\ncontent-disposition: form-data; name="f${i}"\r\n\r\nx\r\n`).join("") + "--B--",
    );
  const type = "multipart/form-data; boundary=B";
  assertEquals((await readMultipart(request(body(100), type, [4096]), limits())).length, 100);
  const err = await assertRejects(
    () => readMultipart(request(body(101), type, [4096]), limits()),
    ApiError,
  );
  assertEquals([err.status, err.code], [400, "too_many_parts"]);
});
