/**
 * Byte buffers: joining chunks, and freeing a buffer nothing holds any more. Used by the body
 * readers, the stores and the PNG encoders alike.
 * @module
 */

/** Joins byte chunks into one buffer (no copy for a single chunk); `total` is their length. */
export function concatBytes(
  chunks: readonly Uint8Array[],
  total: number = chunks.reduce((n, c) => n + c.byteLength, 0),
): Uint8Array<ArrayBuffer> {
  // Body chunks from fetch and Deno.serve are backed by plain ArrayBuffers.
  if (chunks.length === 1) return chunks[0] as Uint8Array<ArrayBuffer>;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/**
 * Frees the memory of bytes that nothing else holds now, rather than at a garbage collection: their
 * `ArrayBuffer` is detached. Bytes that do not start their buffer are left alone.
 */
export function release(bytes: Uint8Array): void {
  const { buffer } = bytes;
  if (buffer instanceof ArrayBuffer && !buffer.detached && bytes.byteOffset === 0) {
    buffer.transfer(0);
  }
}
