import { assertEquals } from "@std/assert";
import { path } from "./router.ts";

Deno.test("path patterns: plain paths compare as text, with the same answers as URLPattern", () => {
  const sources = [
    "/healthz",
    "/",
    "{/v1}?/chat/completions",
    "/admin/v1/keys",
    "/images/:name",
    "{/v1}?/models/:id(.+)",
    "/demo/images/*",
    "*",
    "/playground{/app.:ext(js|css)}?",
  ];
  const paths = [
    "/healthz",
    "/healthz/",
    "/",
    "",
    "/chat/completions",
    "/v1/chat/completions",
    "/v2/chat/completions",
    "/v1/v1/chat/completions",
    "/admin/v1/keys",
    "/images/abc.png",
    "/images/",
    "/models/Qwen/Qwen-Image",
    "/v1/models/a%2Fb",
    "/demo/images/1.png",
    "/playground",
    "/playground/app.js",
    "/playground/app.txt",
    "/HEALTHZ",
    "/playgroundx",
    "/v1/modelsx/a",
    "/v1/models/",
  ];
  for (const source of sources) {
    const reference = new URLPattern({ pathname: source });
    for (const p of paths) {
      assertEquals(
        path(source).exec(p),
        reference.exec({ pathname: p })?.pathname.groups ?? null,
        `${source} on ${p}`,
      );
    }
  }
});
