import { assertEquals } from "@std/assert";
import { storedImageLink } from "./stored_images.ts";

Deno.test("storedImageLink: a stored image's name, at the root or under PUBLIC_BASE_URL's path", () => {
  const name = "AbCdEfGhIjKlMnOpQrStUv.png";
  assertEquals(storedImageLink(`https://x.test/images/${name}`), {
    name,
    base: "https://x.test",
  });
  assertEquals(storedImageLink(`https://x.test/sf/images/${name}`), {
    name,
    base: "https://x.test/sf",
  });
  assertEquals(storedImageLink("https://x.test/images/AbCdEfGhIjKlMnOpQrStUv.mp4"), undefined);
  assertEquals(storedImageLink("https://x.test/images/short.png"), undefined);
  assertEquals(storedImageLink("https://x.test/outputs/a.png?sig=1"), undefined);
  assertEquals(storedImageLink("not a url"), undefined);
});
