/**
 * The playground at `/`: a page that lets anyone try every model and parameter in a browser. No
 * build step and no CDN: the page, its style, its scripts and its icon are files beside this
 * module, imported as text, so the server serves them itself and `deno compile` embeds them. The
 * form is built from each model's JSON Schema (`GET /v1/models/{id}`), so a new registry entry
 * appears with no page change. `PLAYGROUND=false` turns it off.
 * @module
 */
import HTML from "./page.html" with { type: "text" };
import CSS from "./app.css" with { type: "text" };
import APP_JS from "./app.js" with { type: "text" };
import FORM_JS from "./form.js" with { type: "text" };
import VIDEO_JS from "./video.js" with { type: "text" };
import FAVICON from "./favicon.svg" with { type: "text" };

/** Scripts and styles from this server only; images and videos from it, or made in the page. */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
  "media-src 'self' blob:; " +
  "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The playground's files, by path. */
export const PLAYGROUND_ASSETS: Readonly<Record<string, { body: string; type: string }>> = {
  "/": { body: HTML, type: "text/html; charset=utf-8" },
  "/playground": { body: HTML, type: "text/html; charset=utf-8" },
  "/playground/app.js": { body: APP_JS, type: "text/javascript; charset=utf-8" },
  "/playground/form.js": { body: FORM_JS, type: "text/javascript; charset=utf-8" },
  "/playground/video.js": { body: VIDEO_JS, type: "text/javascript; charset=utf-8" },
  "/playground/app.css": { body: CSS, type: "text/css; charset=utf-8" },
  "/favicon.svg": { body: FAVICON, type: "image/svg+xml" },
};

/** Serves one playground file with its security headers; undefined for another path. */
export function playgroundAsset(pathname: string): Response | undefined {
  const asset = Object.hasOwn(PLAYGROUND_ASSETS, pathname)
    ? PLAYGROUND_ASSETS[pathname]
    : undefined;
  if (!asset) return undefined;
  return new Response(asset.body, {
    headers: {
      "content-type": asset.type,
      "content-security-policy": CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "cache-control": "no-cache",
    },
  });
}
