/** Pictures for the PNG and thumbnail tests. */
import type { Rgba } from "../lib/png.ts";

/** Noise that does not compress: at 600² pixels its PNG is over a megabyte. */
export function noise(side: number, alpha = false): Rgba {
  const pixels = new Uint8Array(side * side * 4);
  let seed = 12345;
  for (let i = 0; i < pixels.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    pixels[i] = i % 4 === 3 && !alpha ? 255 : seed >>> 24;
  }
  return { width: side, height: side, pixels };
}
