/**
 * Multipart bodies (`/v1/images/edits`), parsed straight from the connection under the same limits
 * as every body: 413 past `MAX_BODY_BYTES`, 408 after `BODY_TIMEOUT_MS`, at most
 * {@link MAX_MULTIPART_PARTS} parts, and the bytes taken from the body budget as they arrive.
 * @module
 */
import { ApiError } from "./errors.ts";
import { type BodyLimits, bodyTimedOut, declaredLength, shareGrower, tooLarge } from "./body.ts";

/**
 * Parses a multipart body straight from the connection, counting bytes as they arrive (413 past
 * `MAX_BODY_BYTES`) and giving up after `BODY_TIMEOUT_MS` (408), without buffering it first.
 */
export async function readFormData(request: Request, limits: BodyLimits): Promise<FormData> {
  const grow = shareGrower(limits, await declaredLength(request, limits));
  const limit = limits.maxBytes;
  const countParts = partCounter(request.headers.get("content-type") ?? "");
  let total = 0;
  let failure: ApiError | undefined;
  const source = request.body?.getReader();
  let counted: ReadableStreamDefaultController<Uint8Array> | undefined;
  const fail = (error: ApiError) => {
    failure ??= error;
    counted?.error(failure);
    source?.cancel().catch(() => {});
  };
  // Pulled by the multipart parser; errored from outside when the body takes too long, which
  // ends the parse at once (a piped stream cannot be aborted while the parser holds it).
  const body = source
    ? new ReadableStream<Uint8Array>({
      start(controller) {
        counted = controller;
      },
      async pull(controller) {
        try {
          const { done, value } = await source.read();
          if (failure) return;
          if (done) return controller.close();
          total += value.byteLength;
          if (total > limit) return fail(tooLarge(limit));
          if (countParts(value) > MAX_MULTIPART_PARTS) return fail(tooManyParts());
          grow(total);
          controller.enqueue(value);
        } catch (err) {
          fail(err instanceof ApiError ? err : invalidMultipart());
        }
      },
      cancel() {
        source.cancel().catch(() => {});
      },
    })
    : null;
  const timer = setTimeout(() => fail(bodyTimedOut(limits)), limits.timeoutMs);
  try {
    return await new Response(body, {
      headers: { "content-type": request.headers.get("content-type") ?? "" },
    }).formData();
  } catch {
    throw failure ?? invalidMultipart();
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The most parts a multipart body may have. The platform's parser takes the whole body at once,
 * so a body of many thousands of tiny parts is refused while it streams, before any parsing.
 */
export const MAX_MULTIPART_PARTS = 100;

function tooManyParts(): ApiError {
  return new ApiError(
    400,
    `The multipart body has more than ${MAX_MULTIPART_PARTS} parts`,
    { param: "body", code: "too_many_parts" },
  );
}

/** Counts the boundary lines of a multipart body chunk by chunk, across chunk edges. */
function partCounter(contentType: string): (chunk: Uint8Array) => number {
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!boundary) return () => 0;
  const marker = `--${boundary[1] ?? boundary[2]}`;
  const latin1 = new TextDecoder("latin1");
  let carry = "";
  let count = 0;
  return (chunk) => {
    const text = carry + latin1.decode(chunk);
    for (let at = text.indexOf(marker); at !== -1; at = text.indexOf(marker, at + marker.length)) {
      count++;
    }
    carry = text.slice(Math.max(0, text.length - marker.length + 1));
    return count;
  };
}

function invalidMultipart(): ApiError {
  return new ApiError(400, "The multipart body could not be parsed", {
    param: "body",
    code: "invalid_multipart",
  });
}
