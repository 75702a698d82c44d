/**
 * A small PNG encoder for the demo stand-in: indexed colour, no interlace, compressed with the
 * platform's `CompressionStream`. The pixels (palette indices) and the palette are given apart,
 * so that one compressed picture can be shown in any number of palettes.
 * @module
 */
import { concatBytes } from "../bytes.ts";
import { deflate, PNG_SIGNATURE, pngChunk, pngHeader } from "../png.ts";

export { PNG_SIGNATURE } from "../png.ts";

/** Compresses rows of palette indices (`width` bytes each) into a PNG's image data. */
export async function compressIndexedRows(
  width: number,
  height: number,
  row: (y: number, out: Uint8Array) => void,
): Promise<Uint8Array<ArrayBuffer>> {
  const stride = width + 1; // filter byte 0 (none) at row start
  const raw = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) row(y, raw.subarray(y * stride + 1, (y + 1) * stride));
  return await deflate(raw);
}

/** A PNG file from compressed indexed rows and a palette of up to 256 `[r, g, b]` colours. */
export function indexedPng(
  width: number,
  height: number,
  compressed: Uint8Array,
  palette: readonly (readonly [number, number, number])[],
): Uint8Array<ArrayBuffer> {
  const colours = new Uint8Array(palette.length * 3);
  palette.forEach((c, i) => colours.set(c, i * 3));
  return concatBytes([
    PNG_SIGNATURE,
    pngChunk("IHDR", pngHeader(width, height, 3)), // indexed colour
    pngChunk("PLTE", colours),
    pngChunk("IDAT", compressed),
    pngChunk("IEND", new Uint8Array()),
  ]);
}
