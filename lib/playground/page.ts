/**
 * The playground at `/`: a page that lets anyone try every model and parameter in a browser. No
 * build step and no CDN: the page, its style, its script and its icon are strings in the module
 * graph, so they are served by the server itself and embedded in the compiled binary. The form is
 * built from each model's JSON Schema (`GET /v1/models/{id}`), so a new registry entry appears
 * with no page change. `PLAYGROUND=false` turns it off.
 * @module
 */
import { APP_JS } from "./app_js.ts";

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SiliconFlow Image → OpenAI · playground</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/playground/app.css">
<script type="module" src="/playground/app.js"></script>
</head>
<body>
<header>
  <h1>SiliconFlow Image <span aria-hidden="true">→</span> OpenAI</h1>
  <p>Generate and edit images, and make videos, with SiliconFlow's models through this server's
  OpenAI API (<code>/v1/images/generations</code>, <code>/v1/images/edits</code>, <code>/v1/videos</code>).</p>
</header>
<main>
<form id="form">
  <div class="field" id="key-field" hidden>
    <label for="key" id="key-label">API key</label>
    <input id="key" type="password" autocomplete="off">
    <span><input id="remember" type="checkbox"> <label for="remember">remember in this browser</label></span>
    <small id="quota" role="status" hidden></small>
  </div>
  <div class="field">
    <label for="model">Model</label>
    <select id="model"></select>
  </div>
  <div class="field">
    <label for="prompt">Prompt</label>
    <textarea id="prompt" rows="3" required placeholder="A lighthouse at dusk, oil painting"></textarea>
  </div>
  <fieldset id="sizes-field"><legend>Size</legend><div id="sizes"></div></fieldset>
  <div class="row">
    <div class="field"><label for="n">Images</label><input id="n" type="number" min="1" max="4" value="1"></div>
    <div class="field"><label for="seed">Seed</label>
      <span class="seed"><input id="seed" type="number" min="0" placeholder="random">
      <button type="button" id="dice" title="Pick a random seed">Random</button></span></div>
  </div>
  <div class="field" id="negative-field">
    <label for="negative">Negative prompt</label>
    <input id="negative" type="text" placeholder="blurry, low quality">
  </div>
  <div class="field" id="images-field" hidden>
    <label for="files">Input images</label>
    <div id="drop" tabindex="0">Drop or paste images here, or
      <input id="files" type="file" accept="image/png,image/jpeg,image/webp,image/gif" multiple>
      <small id="images-hint"></small></div>
    <div id="thumbs"></div>
  </div>
  <details><summary>More parameters</summary><div id="params"></div></details>
  <div class="buttons">
    <button id="generate" type="submit">Generate</button>
    <button id="cancel" type="button" hidden>Cancel</button>
    <span id="status" role="status"></span>
  </div>
  <p id="error" role="alert" hidden></p>
</form>
<section aria-label="Results" id="gallery"></section>
</main>
</body>
</html>
`;

const CSS = `
[hidden] { display: none !important; }
:root { color-scheme: light dark; --accent: #5b5bd6; font-family: system-ui, sans-serif; }
body { margin: 0 auto; max-width: 72rem; padding: 1rem; }
header h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
header p { margin: 0 0 1rem; opacity: .8; }
main { display: grid; grid-template-columns: minmax(16rem, 24rem) minmax(0, 1fr); gap: 1.5rem; align-items: start; }
/* A phone: one column, and nothing wider than the screen (inputs and file pickers shrink). */
@media (max-width: 48rem) { main { grid-template-columns: minmax(0, 1fr); } body { padding: .75rem; } }
header p { overflow-wrap: anywhere; }
form { display: grid; grid-template-columns: minmax(0, 1fr); gap: .75rem; }
.field { display: grid; grid-template-columns: minmax(0, 1fr); gap: .25rem; }
/* Fields side by side only while each has room to show its value; a hidden one takes none. */
.row { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: .75rem; }
label, legend, summary { font-weight: 600; font-size: .9rem; }
input, select, textarea, button { font: inherit; padding: .45rem .5rem; border-radius: .4rem;
  border: 1px solid color-mix(in srgb, currentColor 30%, transparent); background: transparent; color: inherit;
  min-width: 0; max-width: 100%; box-sizing: border-box; }
button { cursor: pointer; }
#generate { background: var(--accent); color: white; border-color: var(--accent); padding: .55rem 1.2rem; }
button:disabled { opacity: .5; cursor: progress; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
fieldset { border: 0; padding: 0; margin: 0; }
#sizes { display: flex; flex-wrap: wrap; gap: .4rem; }
.size label { font-weight: 400; }
.seed { display: flex; gap: .3rem; } .seed input { flex: 1; min-width: 0; }
#drop { overflow-wrap: anywhere; border: 2px dashed color-mix(in srgb, currentColor 30%, transparent); border-radius: .5rem; padding: .75rem; }
#thumbs { display: flex; gap: .4rem; flex-wrap: wrap; }
.thumb { position: relative; } .thumb img { height: 4rem; border-radius: .3rem; }
.thumb button { position: absolute; top: 0; right: 0; padding: 0 .35rem; }
#params { display: grid; gap: .5rem; margin-top: .5rem; }
.buttons { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
#error { color: #d33; margin: 0; }
#gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(14rem, 100%), 1fr)); gap: 1rem; }
figure { margin: 0; } figure img, figure video { width: 100%; border-radius: .5rem; display: block; }
figure progress { width: 100%; }
figcaption { font-size: .8rem; opacity: .8; margin: .3rem 0; overflow-wrap: anywhere; }
.actions { display: flex; gap: .4rem; flex-wrap: wrap; font-size: .85rem; }
.actions a, .actions button { padding: .25rem .5rem; }
`;

const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
<stop offset="0" stop-color="#f5a623"/><stop offset="1" stop-color="#5b5bd6"/></linearGradient></defs>
<rect width="64" height="64" rx="14" fill="url(#g)"/>
<path d="M14 44l12-14 9 10 6-7 9 11z" fill="#fff" opacity=".9"/><circle cx="44" cy="22" r="6" fill="#fff"/>
</svg>`;

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
