/**
 * PNG, written with the platform's `CompressionStream`: chunks, a truecolour encoder, a decoder
 * for the common kinds (8- and 16-bit, every colour type but packed sub-byte ones, no interlace),
 * and a thumbnail made by averaging blocks of pixels. Linear in the pixels, with the decoded size
 * bounded before anything is inflated. The demo's indexed encoder and the MCP tools' thumbnails
 * use it.
 * @module
 */
import { concatBytes } from "./bytes.ts";

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

/** One chunk: length, type, data and CRC. */
export function pngChunk(type: string, data: Uint8Array): Uint8Array<ArrayBuffer> {
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

/** Compresses bytes with zlib's deflate (what a PNG's image data is). */
export async function deflate(raw: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate"));
  return await new Response(stream).bytes();
}

/** The IHDR of a PNG: size, 8-bit samples of `colourType`, no interlace. */
export function pngHeader(width: number, height: number, colourType: number): Uint8Array {
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, colourType, 0, 0, 0], 8);
  return header;
}

/** An image as 8-bit RGBA samples. */
export interface Rgba {
  width: number;
  height: number;
  /** `width × height × 4` bytes, row by row. */
  pixels: Uint8Array;
}

/** Encodes RGBA pixels as a PNG (RGB when every pixel is opaque). */
export async function encodePng(image: Rgba): Promise<Uint8Array<ArrayBuffer>> {
  const { width, height, pixels } = image;
  let opaque = true;
  for (let i = 3; i < pixels.length && opaque; i += 4) opaque = pixels[i] === 255;
  const channels = opaque ? 3 : 4;
  const stride = width * channels + 1;
  const raw = new Uint8Array(stride * height);
  for (let y = 0, at = 0; y < height; y++) {
    raw[y * stride] = 0; // no filter
    for (let x = 0; x < width; x++, at += 4) {
      raw.set(pixels.subarray(at, at + channels), y * stride + 1 + x * channels);
    }
  }
  return concatBytes([
    PNG_SIGNATURE,
    pngChunk("IHDR", pngHeader(width, height, opaque ? 2 : 6)),
    pngChunk("IDAT", await deflate(raw)),
    pngChunk("IEND", new Uint8Array()),
  ]);
}

const CHANNELS: Readonly<Record<number, number>> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/** Inflates at most `limit` bytes; undefined when there would be more (a bomb, or a lie). */
async function inflate(data: Uint8Array<ArrayBuffer>, limit: number) {
  const out = new Uint8Array(limit);
  let at = 0;
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream("deflate"));
  for await (const part of stream) {
    if (at + part.length > limit) return undefined;
    out.set(part, at);
    at += part.length;
  }
  return at === limit ? out : undefined;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * Decodes a PNG into RGBA, or undefined for what it does not read (interlaced, packed sub-byte
 * samples, damaged) or an image over `maxPixels`.
 */
export async function decodePng(bytes: Uint8Array, maxPixels: number): Promise<Rgba | undefined> {
  if (bytes.length < 33 || !PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0, height = 0, depth = 0, type = -1, interlace = 0;
  let palette: Uint8Array | undefined;
  let alphas: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  for (let at = 8; at + 12 <= bytes.length;) {
    const length = view.getUint32(at);
    const kind = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (data.length !== length) return undefined;
    if (kind === "IHDR") {
      [width, height] = [view.getUint32(at + 8), view.getUint32(at + 12)];
      [depth, type, interlace] = [data[8], data[9], data[12]];
    } else if (kind === "PLTE") palette = data;
    else if (kind === "tRNS") alphas = data;
    else if (kind === "IDAT") idat.push(data);
    else if (kind === "IEND") break;
    at += 12 + length;
  }
  const channels = CHANNELS[type];
  if (!channels || interlace || (depth !== 8 && depth !== 16) || (type === 3 && !palette)) {
    return undefined;
  }
  if (!width || !height || width * height > maxPixels) return undefined;
  const bpp = channels * (depth / 8);
  const stride = width * bpp;
  const raw = await inflate(concatBytes(idat), (stride + 1) * height);
  if (!raw) return undefined;
  const pixels = new Uint8Array(width * height * 4);
  let prior = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const row = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? row[i - bpp] : 0, b = prior[i], c = i >= bpp ? prior[i - bpp] : 0;
      row[i] = (row[i] + (filter === 1
        ? a
        : filter === 2
        ? b
        : filter === 3
        ? (a + b) >> 1
        : filter === 4
        ? paeth(a, b, c)
        : 0)) & 0xff;
    }
    prior = row;
    for (let x = 0; x < width; x++) {
      const sample = (k: number) => row[x * bpp + k * (depth / 8)];
      const out = (y * width + x) * 4;
      if (type === 3) {
        const index = sample(0);
        pixels.set(palette!.subarray(index * 3, index * 3 + 3), out);
        pixels[out + 3] = alphas && index < alphas.length ? alphas[index] : 255;
      } else if (channels <= 2) {
        pixels.fill(sample(0), out, out + 3);
        pixels[out + 3] = channels === 2 ? sample(1) : 255;
      } else {
        pixels[out] = sample(0);
        pixels[out + 1] = sample(1);
        pixels[out + 2] = sample(2);
        pixels[out + 3] = channels === 4 ? sample(3) : 255;
      }
    }
  }
  return { width, height, pixels };
}

/** The image scaled down to fit `maxSide`, each pixel the average of the block it stands for. */
export function shrink(image: Rgba, maxSide: number): Rgba {
  const scale = Math.max(image.width, image.height) / maxSide;
  if (scale <= 1) return image;
  const width = Math.max(1, Math.round(image.width / scale));
  const height = Math.max(1, Math.round(image.height / scale));
  const sums = new Float64Array(width * height * 4);
  const counts = new Uint32Array(width * height);
  for (let y = 0; y < image.height; y++) {
    const ty = Math.min(height - 1, Math.floor(y * height / image.height));
    for (let x = 0; x < image.width; x++) {
      const t = ty * width + Math.min(width - 1, Math.floor(x * width / image.width));
      const s = (y * image.width + x) * 4;
      for (let k = 0; k < 4; k++) sums[t * 4 + k] += image.pixels[s + k];
      counts[t]++;
    }
  }
  const pixels = new Uint8Array(width * height * 4);
  for (let t = 0; t < counts.length; t++) {
    for (let k = 0; k < 4; k++) pixels[t * 4 + k] = Math.round(sums[t * 4 + k] / counts[t]);
  }
  return { width, height, pixels };
}
