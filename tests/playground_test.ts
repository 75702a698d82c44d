/**
 * The playground in a real browser: headless Chromium (Debian's, installed by .ci/run) driven by
 * puppeteer-core. Two models generate; an image goes to an edit model; a result is made again,
 * downloaded and edited; the settings outlast a reload; a slow generation is cancelled; a bad
 * access key shows the server's message; on a phone nothing is wider than the screen.
 * Screenshots land in test-output/.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { PNG_DATA_URI, startFakeUpstream, startServer } from "./_helpers.ts";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});
const OUTPUT = new URL("../test-output/", import.meta.url);
const opts = { ignore: !CHROMIUM };

/** A phone's screen: narrow, touch, a dense display. */
interface Viewport {
  width: number;
  height: number;
  isMobile?: boolean;
  hasTouch?: boolean;
  deviceScaleFactor?: number;
}

async function withPage(
  url: string,
  fn: (page: Page) => Promise<void>,
  viewport: Viewport = { width: 1200, height: 900 },
  /** Console errors the test provokes on purpose (a refused request, the server gone). */
  expected?: RegExp,
): Promise<void> {
  const browser: Browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--headless=new", "--disable-gpu"],
  });
  try {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
    page.on("pageerror", (e) => problems.push(String(e)));
    await page.setViewport(viewport);
    await page.goto(url, { waitUntil: "networkidle0" });
    await fn(page);
    assertEquals(problems.filter((p) => !expected?.test(p)), [], "the console stays clean");
  } finally {
    await browser.close();
  }
}

async function pick(page: Page, model: string) {
  await page.select("#model", model);
  // The form is rebuilt from the model's schema; the page marks which model it shows.
  await page.waitForFunction(`document.body.dataset.model === ${JSON.stringify(model)}`);
}

async function generate(page: Page, prompt: string): Promise<number> {
  const before = await page.$$eval("#gallery figure", (f) => f.length);
  await page.evaluate(`document.querySelector("#prompt").value = ""`);
  await page.type("#prompt", prompt);
  await page.click("#generate");
  await page.waitForFunction(
    `document.querySelectorAll("#gallery figure").length > ${before} &&
      document.querySelector("#gallery figure img").complete &&
      document.querySelector("#gallery figure img").naturalWidth > 0`,
    { timeout: 20_000 },
  );
  return Number(await page.evaluate(`document.querySelector("#gallery figure img").naturalWidth`));
}

Deno.test({
  name:
    "playground: two models, an edit with an uploaded image, a screenshot (demo mode, with a store: made as async tasks)",
  ...opts,
  async fn() {
    const store = await Deno.makeTempDir();
    await using server = startServer({ DEMO: "true", IMAGE_STORE: store });
    const submitted = () => server.logs.filter((l) => l.status === 202).length;
    await withPage(`${server.url}/`, async (page) => {
      await page.waitForFunction(`document.body.dataset.model !== undefined`);
      assertEquals(
        await page.evaluate(`getComputedStyle(document.querySelector("#key-field")).display`),
        "none",
      );
      // The page names the MCP endpoint, as a client must be given it.
      assertEquals(
        await page.evaluate(`document.querySelector("#mcp-url").textContent`),
        `${server.url}/mcp`,
      );
      await pick(page, "Qwen/Qwen-Image");
      assertEquals(await generate(page, "a lighthouse at dusk"), 1328);
      const caption = await page.$eval("#gallery figcaption", (e) => e.textContent ?? "");
      assert(/seed \d+/.test(caption), caption);
      assertEquals(await page.evaluate(`document.querySelector("#seed").value`), "");
      await pick(page, "Kwai-Kolors/Kolors");
      assertEquals(await generate(page, "a red fox"), 1024);
      await Deno.mkdir(OUTPUT, { recursive: true });
      await page.screenshot({ path: new URL("playground.png", OUTPUT).pathname });

      // An edit model takes an uploaded image.
      await pick(page, "Qwen/Qwen-Image-Edit-2509");
      assert(
        await page.evaluate(
          `getComputedStyle(document.querySelector("#images-field")).display !== "none"`,
        ),
      );
      const file = await Deno.makeTempFile({ suffix: ".png" });
      await Deno.writeFile(
        file,
        Uint8Array.from(atob(PNG_DATA_URI.split(",")[1]), (c) => c.charCodeAt(0)),
      );
      const input = await page.$("#files");
      await (input as unknown as { uploadFile(path: string): Promise<void> }).uploadFile(file);
      await page.waitForSelector("#thumbs img");
      assert(await generate(page, "make it blue") > 0);
      await Deno.remove(file);
    });
    assertEquals(submitted(), 3, "each generation went through an async task");
    await Deno.remove(store, { recursive: true });
  },
});

Deno.test({
  name: "playground: a slow generation is cancelled, and the upstream call with it",
  ...opts,
  async fn() {
    await using fake = startFakeUpstream();
    fake.delayMs = 5_000;
    await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
    await withPage(`${server.url}/`, async (page) => {
      await page.waitForFunction(`document.body.dataset.model !== undefined`);
      assert(
        await page.evaluate(
          `getComputedStyle(document.querySelector("#key-field")).display !== "none"`,
        ),
      );
      await page.type("#key", "sk-user-key");
      await page.type("#prompt", "a slow one");
      await page.click("#generate");
      await page.waitForFunction(`!document.querySelector("#cancel").hidden`);
      while (fake.inFlight() === 0) await new Promise((r) => setTimeout(r, 20));
      await page.click("#cancel");
      await page.waitForFunction(`document.querySelector("#status").textContent === "Cancelled"`);
      for (let i = 0; i < 50 && fake.aborted() === 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assertEquals(fake.aborted(), 1);
      assertEquals(fake.received.at(-1)!.authorization, "Bearer sk-user-key");
      assertEquals(
        typeof fake.received.at(-1)!.body.seed,
        "number",
        "the page always sends a seed",
      );
    });
  },
});

Deno.test({
  name: "playground: a bad access key in server-key mode shows the server's message",
  ...opts,
  async fn() {
    await using fake = startFakeUpstream();
    await using server = startServer({
      SILICONFLOW_BASE_URL: fake.baseUrl,
      SILICONFLOW_API_KEY: "sk-owner-00000000000000000000",
      PROXY_API_KEYS: "pk-right-key-1234",
    });
    await withPage(`${server.url}/playground`, async (page) => {
      assertStringIncludes(
        await page.$eval("#key-label", (e) => e.textContent ?? ""),
        "Access key",
      );
      await page.type("#key", "pk-wrong");
      await page.type("#prompt", "a cat");
      await page.click("#generate");
      await page.waitForFunction(`!document.querySelector("#error").hidden`);
      assertStringIncludes(
        await page.$eval("#error", (e) => e.textContent ?? ""),
        "Invalid API key",
      );
    }).catch((err) => {
      // The 401 is logged by the browser as a failed request; that alone is not a problem.
      if (!String(err).includes("401")) throw err;
    });
  },
});

Deno.test("playground: PLAYGROUND=false turns it off; the page sets a strict CSP", async () => {
  await using on = startServer({ DEMO: "true" });
  const page = await fetch(`${on.url}/`);
  const csp = page.headers.get("content-security-policy") ?? "";
  assertStringIncludes(csp, "script-src 'self'");
  assert(!/unsafe-inline|https?:/.test(csp), csp);
  assertStringIncludes(await page.text(), '<script type="module" src="/playground/app.js">');
  for (const path of ["/playground/app.js", "/playground/app.css", "/favicon.svg"]) {
    const res = await fetch(`${on.url}${path}`);
    assertEquals(res.status, 200, path);
    await res.body?.cancel();
  }
  await using off = startServer({ DEMO: "true", PLAYGROUND: "false" });
  const gone = await fetch(`${off.url}/`);
  assertEquals(gone.status, 404);
  await gone.body?.cancel();
});

Deno.test("HEAD on the page, its files and demo images: GET's headers, no body; OPTIONS and 405s", async () => {
  await using server = startServer({ DEMO: "true" });
  const image = await (await fetch(`${server.url}/v1/images/generations`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer k" },
    body: JSON.stringify({ model: "Kwai-Kolors/Kolors", prompt: "a fox", size: "256x256" }),
  })).json();
  const demoPath = new URL(image.data[0].url).pathname;
  for (const path of ["/", "/playground", "/playground/app.js", "/favicon.svg", demoPath]) {
    // Uncompressed, so that GET's length is the one HEAD announces.
    const headers = { "accept-encoding": "identity" };
    const got = await fetch(`${server.url}${path}`, { headers });
    const size = (await got.arrayBuffer()).byteLength;
    const head = await fetch(`${server.url}${path}`, { method: "HEAD", headers });
    assertEquals(head.status, 200, path);
    assertEquals(head.headers.get("content-type"), got.headers.get("content-type"), path);
    assertEquals(head.headers.get("content-length"), String(size), path);
    assertEquals((await head.arrayBuffer()).byteLength, 0, path);
  }
  const preflight = await fetch(`${server.url}/images/x.png`, {
    method: "OPTIONS",
    headers: { origin: "https://a.example", "access-control-request-method": "HEAD" },
  });
  assertEquals(preflight.status, 204);
  assertStringIncludes(preflight.headers.get("access-control-allow-methods") ?? "", "HEAD");
  await preflight.body?.cancel();
  const wrong = await fetch(`${server.url}/healthz`, { method: "DELETE" });
  assertEquals(wrong.status, 405);
  assertEquals(wrong.headers.get("allow"), "GET, HEAD, OPTIONS");
  assertEquals((await wrong.json()).error.code, "method_not_allowed");
  const post = await fetch(`${server.url}/v1/chat/completions`, { method: "HEAD" });
  assertEquals([post.status, post.headers.get("allow")], [405, "OPTIONS, POST"]);
  await post.body?.cancel();
});

Deno.test({
  name: "playground: an access key with quotas sees what is left of them",
  ...opts,
  async fn() {
    await using fake = startFakeUpstream();
    await using server = startServer({
      SILICONFLOW_BASE_URL: fake.baseUrl,
      SILICONFLOW_API_KEY: "sk-owner-00000000000000000000",
      ADMIN_API_KEY: "admin-0123456789abcdef",
      KV_PATH: ":memory:",
    });
    const made = await fetch(`${server.url}/admin/v1/keys`, {
      method: "POST",
      headers: { authorization: "Bearer admin-0123456789abcdef" },
      body: JSON.stringify({ name: "erin", images_per_day: 5 }),
    });
    const { key } = await made.json();
    await withPage(`${server.url}/`, async (page) => {
      await page.waitForFunction(`document.body.dataset.model !== undefined`);
      await page.type("#key", key);
      await page.keyboard.press("Tab"); // the key field's change event
      await page.waitForFunction(
        `document.querySelector("#quota").textContent.includes("today: 5")`,
      );
      await page.type("#prompt", "a cat");
      await page.click("#generate");
      await page.waitForFunction(
        `document.querySelector("#quota").textContent.includes("today: 4")`,
      );
    });
  },
});

/** Elements that reach past the right edge of the screen, and the document's scroll width. */
async function overflow(page: Page): Promise<{ scrollWidth: number; wider: string[] }> {
  return await page.evaluate(`(() => {
    const width = document.documentElement.clientWidth;
    const wider = [...document.querySelectorAll("body *")]
      .filter((e) => e.getClientRects().length && e.getBoundingClientRect().right > width + 0.5)
      .map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " " +
        Math.round(e.getBoundingClientRect().right));
    return { scrollWidth: document.documentElement.scrollWidth - width, wider };
  })()`) as { scrollWidth: number; wider: string[] };
}

for (const width of [360, 390]) {
  Deno.test({
    name: `playground on a phone (${width}×844): nothing is wider than the screen`,
    ...opts,
    async fn() {
      await using server = startServer({ DEMO: "true" });
      const phone = { width, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 3 };
      await withPage(`${server.url}/`, async (page) => {
        await page.waitForFunction(`document.body.dataset.model !== undefined`);
        assertEquals(await overflow(page), { scrollWidth: 0, wider: [] }, "the first view");
        // The widest form: an edit model's image picker and every parameter open.
        await pick(page, "Qwen/Qwen-Image-Edit-2509");
        await page.evaluate(`document.querySelector("details").open = true`);
        assertEquals(await overflow(page), { scrollWidth: 0, wider: [] }, "the edit form");
        await pick(page, "Qwen/Qwen-Image");
        await page.type("#seed", "987654321");
        assert(await generate(page, "a lighthouse at dusk, seen from a very long way off") > 0);
        assertEquals(await overflow(page), { scrollWidth: 0, wider: [] }, "with a result");
        // The new result is brought into view below the form.
        const top = await page.$eval("#gallery figure", (f) => f.getBoundingClientRect().top);
        assert(top < 844, `the result is off screen at ${top}px`);
        await Deno.mkdir(OUTPUT, { recursive: true });
        await page.screenshot({ path: new URL(`playground-${width}.png`, OUTPUT).pathname });
      }, phone);
    },
  });
}

Deno.test({
  name: "playground: Again, Download and Edit this on a result; the settings outlast a reload",
  ...opts,
  async fn() {
    await using server = startServer({ DEMO: "true" });
    const downloads = await Deno.makeTempDir({ prefix: "playground-downloads-" });
    await withPage(`${server.url}/`, async (page) => {
      await page.waitForFunction(`document.body.dataset.model !== undefined`);
      await pick(page, "Kwai-Kolors/Kolors");
      await page.type("#seed", "42");
      await page.type("#negative", "blurry");
      const second = await page.evaluate(
        `document.querySelectorAll("input[name=size]")[1].value`,
      ) as string;
      await page.click(`input[name=size][value="${second}"]`);
      await generate(page, "a red fox");
      const captions = () => page.$$eval("#gallery figcaption", (c) => c.map((e) => e.textContent));

      // Again: the same request, the same seed.
      await page.click("#gallery figure .actions button:nth-of-type(1)");
      await page.waitForFunction(`document.querySelectorAll("#gallery figure").length === 2`);
      const [again, first] = await captions();
      assertStringIncludes(again!, "Kwai-Kolors/Kolors · seed 42 · " + second);
      assertStringIncludes(first!, "Kwai-Kolors/Kolors · seed 42 · " + second);

      // Download: the file, named after the model and seed, is the image shown.
      const cdp = await page.createCDPSession();
      await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: downloads });
      await page.click("#gallery figure .actions a");
      const saved = `${downloads}/Kolors-seed-42.png`;
      for (let i = 0; i < 100; i++) {
        if (await Deno.stat(saved).then(() => true, () => false)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const src = await page.evaluate(
        `document.querySelector("#gallery figure img").src`,
      ) as string;
      const shown = Uint8Array.from(atob(src.split(",")[1]), (c) => c.charCodeAt(0));
      assertEquals(await Deno.readFile(saved), shown);

      // The settings outlast a reload; the key is not among them.
      await page.reload({ waitUntil: "networkidle0" });
      await page.waitForFunction(`document.body.dataset.model === "Kwai-Kolors/Kolors"`);
      assertEquals(
        await page.evaluate(`[
          document.querySelector("#prompt").value, document.querySelector("#seed").value,
          document.querySelector("#negative").value,
          document.querySelector("input[name=size]:checked").value,
        ]`),
        ["a red fox", "42", "blurry", second],
      );
      assertEquals(await page.evaluate(`localStorage.getItem("playground-key")`), null);

      // Edit this: the image goes to an edit model's input, ready for the next prompt.
      await generate(page, "a red fox");
      await page.click("#gallery figure .actions button:nth-of-type(2)");
      await page.waitForFunction(`/Edit/.test(document.body.dataset.model)`);
      await page.waitForSelector("#thumbs img");
      assertEquals(await page.$$eval("#thumbs img", (t) => t.length), 1);
      const editor = await page.evaluate(`document.body.dataset.model`) as string;
      assert(await generate(page, "give it a hat") > 0);
      assertStringIncludes((await captions())[0]!, `${editor} · seed 42`);
    });
    await Deno.remove(downloads, { recursive: true });
  },
});

Deno.test({
  name:
    "playground: a video model submits a job, shows its progress, plays the MP4, and picks it up after a reload",
  ...opts,
  async fn() {
    await using fake = startFakeUpstream();
    fake.videoMs = 2_000;
    await using server = startServer({
      SILICONFLOW_BASE_URL: fake.baseUrl,
      SILICONFLOW_API_KEY: "sk-owner-playground-video-1111",
      ALLOW_ANONYMOUS: "true",
      KV_PATH: ":memory:",
      VIDEO_POLL_MS: "200",
    });
    await withPage(`${server.url}/`, async (page) => {
      await page.waitForFunction(`document.body.dataset.model !== undefined`);
      await pick(page, "Wan-AI/Wan2.2-T2V-A14B");
      assertEquals(
        await page.evaluate(`document.querySelector("#n").closest(".field").hidden`),
        true,
      );
      const sizes = await page.evaluate(
        `[...document.querySelectorAll("input[name=size]")].map((i) => i.value)`,
      );
      assertEquals(sizes, ["1280x720", "720x1280", "960x960"]);
      await page.click("input[name=size][value='720x1280']");
      await page.type("#prompt", "a heron takes off");
      await page.click("#generate");
      await page.waitForSelector("#gallery figure.video progress", { timeout: 5_000 });
      assertStringIncludes(
        await page.$eval("#gallery figure.video", (f) => f.textContent ?? ""),
        "a heron takes off",
      );
      assertEquals(fake.received.at(-1)!.body.image_size, "720x1280");
      const playing = `(() => { const v = document.querySelector("#gallery figure.video video");
        return v && v.readyState >= 2 && v.duration > 4 && v.videoHeight > v.videoWidth; })()`;
      await page.waitForFunction(playing, { timeout: 20_000 });
      // The job is kept in the browser: after a reload its card comes back and plays.
      await page.reload({ waitUntil: "networkidle0" });
      await page.waitForFunction(playing, { timeout: 20_000 });
      assertEquals(await page.$$eval("#gallery figure.video", (f) => f.length), 1);
      // The image-to-video model asks for a first frame.
      await pick(page, "Wan-AI/Wan2.2-I2V-A14B");
      assertEquals(await page.evaluate(`document.querySelector("#images-field").hidden`), false);
      assertEquals(await page.$eval("#images-field label", (l) => l.textContent), "First frame");
      await page.screenshot({ path: new URL("playground-video.png", OUTPUT).pathname });
    });
  },
});

const SCREENS: [string, Viewport][] = [
  ["1280×800", { width: 1280, height: 800 }],
  ["390×844", { width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 3 }],
];

/** Whether an element is wholly on screen. */
function onScreen(page: Page, selector: string): Promise<boolean> {
  return page.evaluate(`(() => { const r = document.querySelector(${JSON.stringify(selector)})
    .getBoundingClientRect(); return r.height > 0 && r.top >= 0 && r.bottom <= innerHeight; })()`) as Promise<
    boolean
  >;
}

/** The visible inputs narrower than 80 px (too narrow to read a seed or a number). */
function narrowInputs(page: Page): Promise<string[]> {
  return page.evaluate(
    `[...document.querySelectorAll("input:not([type=checkbox]):not([type=radio]):not([type=file]), select, textarea")]
    .filter((e) => e.offsetParent !== null && e.getBoundingClientRect().width < 80)
    .map((e) => e.id + ": " + Math.round(e.getBoundingClientRect().width) + " px")`,
  ) as Promise<
    string[]
  >;
}

for (const [name, screen] of SCREENS) {
  Deno.test({
    name:
      `playground at ${name}: an error is in view and names the page's field; inputs are wide enough; a result comes into view`,
    ...opts,
    async fn() {
      await using fake = startFakeUpstream();
      await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, KV_PATH: ":memory:" });
      await withPage(
        `${server.url}/`,
        async (page) => {
          await page.waitForFunction(`document.body.dataset.model !== undefined`);
          // No key: the error is in view, and speaks of the page's own key field.
          await page.type("#prompt", "a cat");
          await page.click("#generate");
          await page.waitForFunction(`!document.querySelector("#error").hidden`);
          await page.waitForFunction(
            `(() => { const r = document.querySelector("#error").getBoundingClientRect();
          return r.top >= 0 && r.bottom <= innerHeight; })()`,
          );
          const error = await page.$eval("#error", (e) => e.textContent ?? "");
          assertStringIncludes(error, "“SiliconFlow API key” field");
          assertEquals(error.includes("Authorization"), false, error);
          assertEquals(await page.$eval("#status", (e) => e.textContent), "");
          // Every input shows its value, for an image model and for a video model.
          assertEquals(await narrowInputs(page), [], "image model");
          await pick(page, "Wan-AI/Wan2.2-T2V-A14B");
          assertEquals(await narrowInputs(page), [], "video model");
          await pick(page, "Qwen/Qwen-Image");
          // A field the server names is named as the page labels it.
          await page.type("#key", "sk-user-key");
          await page.evaluate(`document.querySelector("#prompt").value = "x".repeat(10001)`);
          await page.click("#generate");
          await page.waitForFunction(
            `document.querySelector("#error").textContent.startsWith("Prompt:")`,
          );
          // A result: on a phone it is brought into view whole.
          await page.evaluate(`document.querySelector("#prompt").value = ""`);
          assert(await generate(page, "a lighthouse") > 0);
          assertEquals(await page.evaluate(`document.querySelector("#error").hidden`), true);
          if (screen.width < 500) {
            await page.waitForFunction(
              `(() => { const r = document.querySelector("#gallery figure").getBoundingClientRect();
            return r.top >= 0 && r.bottom <= innerHeight; })()`,
              { timeout: 5_000 },
            );
          }
          assert(await onScreen(page, "#generate") || screen.width < 500);
          await Deno.mkdir(OUTPUT, { recursive: true });
          await page.screenshot({
            path: new URL(`playground-errors-${screen.width}.png`, OUTPUT).pathname,
          });
          // The browser logs the refused requests (401, 400) it was made to send.
        },
        screen,
        /Failed to load resource: the server responded with a status of 40[01]/,
      );
    },
  });

  Deno.test({
    name:
      `playground at ${name}: the status line follows the latest action; with the server gone it says so, and polling backs off`,
    ...opts,
    async fn() {
      await using fake = startFakeUpstream();
      fake.videoMs = 1_500;
      const env = {
        SILICONFLOW_BASE_URL: fake.baseUrl,
        SILICONFLOW_API_KEY: "sk-owner-playground-status-1111",
        ALLOW_ANONYMOUS: "true",
        KV_PATH: ":memory:",
        VIDEO_POLL_MS: "200",
      };
      const server = startServer(env);
      let stopped = false;
      try {
        await withPage(
          `${server.url}/`,
          async (page) => {
            await page.waitForFunction(`document.body.dataset.model !== undefined`);
            await pick(page, "Wan-AI/Wan2.2-T2V-A14B");
            await page.type("#prompt", "a heron");
            await page.click("#generate");
            await page.waitForFunction(
              `document.querySelector("#status").textContent.startsWith("Video submitted")`,
            );
            await page.waitForFunction(`document.querySelector("#gallery figure.video video")`, {
              timeout: 20_000,
            });
            assertEquals(await page.$eval("#status", (e) => e.textContent), "Video ready");
            // A later error replaces the status; nothing older stays beside it.
            await page.evaluate(`document.querySelector("#prompt").value = "x".repeat(10001)`);
            await page.click("#generate");
            await page.waitForFunction(`!document.querySelector("#error").hidden`);
            assertEquals(await page.$eval("#status", (e) => e.textContent), "");
            // The server goes away while a video renders: the card says so, the tries back off,
            // and a Generate says the server cannot be reached.
            fake.videoMs = 60_000;
            await page.evaluate(`document.querySelector("#prompt").value = "a second heron"`);
            await page.click("#generate");
            await page.waitForFunction(`document.querySelector("#gallery figure.video progress")`);
            const tries: number[] = [];
            page.on(
              "requestfailed",
              (r) => r.url().includes("/v1/videos/") && tries.push(Date.now()),
            );
            await server[Symbol.asyncDispose]();
            stopped = true;
            await page.waitForFunction(
              `document.querySelector("#gallery figure.video").textContent.includes("cannot be reached")`,
              { timeout: 10_000 },
            );
            while (tries.length < 3) await new Promise((r) => setTimeout(r, 100));
            assert(tries[2] - tries[1] > (tries[1] - tries[0]) * 1.5, `tries at ${tries}`);
            await page.click("#generate");
            await page.waitForFunction(
              `document.querySelector("#error").textContent.includes("cannot be reached")`,
            );
            // The browser logs the refused request (400) and those to the server once it is gone.
          },
          screen,
          /Failed to load resource: (the server responded with a status of 400|net::ERR_)/,
        );
      } finally {
        if (!stopped) await server[Symbol.asyncDispose]();
      }
    },
  });
}
