import { assert, assertEquals } from "@std/assert";
import { decodePng, encodePng, type Rgba, shrink } from "./png.ts";
import { noise } from "../tests/_noise.ts";

Deno.test("PNG: what is encoded decodes to the same pixels, RGB and RGBA", async () => {
  for (const alpha of [false, true]) {
    const image = noise(37, alpha);
    const decoded = await decodePng(await encodePng(image), 10_000);
    assertEquals(decoded?.width, 37);
    assertEquals(decoded?.pixels, image.pixels);
  }
});

Deno.test("PNG: a thumbnail averages blocks and keeps the shape", () => {
  const image: Rgba = { width: 4, height: 2, pixels: new Uint8Array(32).fill(200) };
  image.pixels.fill(0, 0, 8); // the first two pixels clear black
  const small = shrink(image, 2);
  assertEquals([small.width, small.height], [2, 1]);
  assertEquals(Array.from(small.pixels.subarray(0, 4)), [100, 100, 100, 100]);
  assertEquals(shrink(image, 10), image);
});

Deno.test("PNG: what it cannot read, or an image too large, is undefined", async () => {
  const png = await encodePng(noise(64));
  assertEquals(await decodePng(png, 64 * 63), undefined, "over the pixel bound");
  assertEquals(await decodePng(png.subarray(0, 100), 1e6), undefined, "cut short");
  assertEquals(await decodePng(new Uint8Array(100), 1e6), undefined, "not a PNG");
  const interlaced = png.slice();
  interlaced[8 + 8 + 12] = 1; // IHDR's interlace byte (its CRC is not checked)
  assertEquals(await decodePng(interlaced, 1e6), undefined);
  assert(await decodePng(png, 1e6));
});
