/**
 * A small PNG encoder for the demo stand-in: indexed colour, no interlace, compressed with the
 * platform's `CompressionStream`. The pixels (palette indices) and the palette are given apart,
 * so that one compressed picture can be shown in any number of palettes.
 * @module
 */
import { concatBytes } from "../server/body.ts";

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Uint8Array, start: number, end: number): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out, 4, 8 + data.length));
  return out;
}

/** The first eight bytes of every PNG file. */
export const PNG_SIGNATURE: Uint8Array = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);

/** Compresses rows of palette indices (`width` bytes each) into a PNG's image data. */
export async function compressIndexedRows(
  width: number,
  height: number,
  row: (y: number, out: Uint8Array) => void,
): Promise<Uint8Array<ArrayBuffer>> {
  const stride = width + 1; // filter byte 0 (none) at row start
  const raw = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) row(y, raw.subarray(y * stride + 1, (y + 1) * stride));
  return new Uint8Array(
    await new Response(
      new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate")),
    ).arrayBuffer(),
  );
}

/** A PNG file from compressed indexed rows and a palette of up to 256 `[r, g, b]` colours. */
export function indexedPng(
  width: number,
  height: number,
  compressed: Uint8Array,
  palette: readonly (readonly [number, number, number])[],
): Uint8Array<ArrayBuffer> {
  const header = new Uint8Array(13);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  header.set([8, 3, 0, 0, 0], 8); // 8-bit, indexed colour, deflate, adaptive filtering, no interlace
  const colours = new Uint8Array(palette.length * 3);
  palette.forEach((c, i) => colours.set(c, i * 3));
  return concatBytes([
    PNG_SIGNATURE,
    chunk("IHDR", header),
    chunk("PLTE", colours),
    chunk("IDAT", compressed),
    chunk("IEND", new Uint8Array()),
  ]);
}
