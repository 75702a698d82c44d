/**
 * The README's and docs/' examples and tables are tested as they stand, so they cannot drift from
 * the code; every link between them resolves.
 */
import { assert, assertEquals } from "@std/assert";
import { findModel, MODELS } from "../lib/generation/registry.ts";
import { resolveImageSize } from "../lib/generation/sizes.ts";
import { post, readSse, startFakeUpstream, startServer, TEST_KEY } from "./_helpers.ts";

const read = (path: string) => Deno.readTextFile(new URL(`../${path}`, import.meta.url));
const PAGES = [
  "README.md",
  ...[...Deno.readDirSync(new URL("../docs/", import.meta.url))]
    .filter((e) => e.name.endsWith(".md")).map((e) => `docs/${e.name}`).sort(),
];
const TEXT: Record<string, string> = Object.fromEntries(
  await Promise.all(PAGES.map(async (page) => [page, await read(page)])),
);
/** Every page, for the examples (they may stand in any of them). */
const README = PAGES.map((page) => TEXT[page]).join("\n");
const API = TEXT["docs/api.md"];
const CONFIGURATION = TEXT["docs/configuration.md"];

/** A heading's anchor, as GitHub makes it. */
function anchorOf(heading: string): string {
  return heading.replace(/^#+\s*/, "").trim().toLowerCase().replace(/[^\w\- ]/g, "")
    .replaceAll(" ", "-");
}

Deno.test("every link of the README and docs/ to a page, a file or a heading resolves", async () => {
  const broken: string[] = [];
  for (const page of PAGES) {
    const dir = new URL(`../${page}`, import.meta.url);
    // Links in prose and tables: not in code blocks or code spans.
    const prose = TEXT[page].replace(/```[\s\S]*?```/g, "").replace(/`[^`\n]*`/g, "");
    for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue; // http(s), mailto
      const [path, anchor] = target.split("#");
      const file = path ? new URL(path, dir) : dir;
      let text: string;
      try {
        text = await Deno.readTextFile(file);
      } catch {
        if (path && (await Deno.stat(file).catch(() => undefined))) continue; // an image
        broken.push(`${page}: ${target}`);
        continue;
      }
      if (!anchor) continue;
      const anchors = text.split("\n").filter((l) => /^#{1,6} /.test(l)).map(anchorOf);
      if (!anchors.includes(anchor)) broken.push(`${page}: ${target}`);
    }
  }
  assertEquals(broken, []);
});

Deno.test("the README is a front door: short, with the two commands and what the demo is", () => {
  const readme = TEXT["README.md"];
  assert(readme.split("\n").length <= 260, `${readme.split("\n").length} lines`);
  for (const words of ["deno task demo", "deno task test", "gradients", "downloads the tests"]) {
    assert(readme.includes(words), words);
  }
});

/** Every curl example aimed at a path, with its JSON body and whether it streams. */
function curlExamples(path: string): { body: Record<string, unknown> }[] {
  const blocks = [...README.matchAll(/```sh\n(curl[\s\S]*?)```/g)].map((m) => m[1]);
  const aimed = new RegExp(`${path}\\s`);
  return blocks.filter((b) => aimed.test(b) && b.includes("-d '")).map((b) => ({
    body: JSON.parse(/-d '([\s\S]*?)'/.exec(b)![1]),
  }));
}

Deno.test("README chat examples work as written", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const examples = curlExamples("/v1/chat/completions");
  assertEquals(examples.length >= 4, true, "demo example plus the three original ones");
  for (const { body } of examples) {
    await t.step(`${body.model}${body.stream ? " (streamed)" : ""}`, async () => {
      const res = await post(`${server.url}/v1/chat/completions`, body);
      assertEquals(res.status, 200, await res.clone().text());
      if (body.modalities) {
        // OpenRouter's shape: the images in message.images, the 16:9 size from image_config.
        const message = (await res.json()).choices[0].message;
        assertEquals(message.images.length, 1);
        assertEquals(fake.received.at(-1)!.body.image_size, "1664x928");
        return;
      }
      const text = body.stream
        ? (await readSse(res)).filter((f) => f !== "[DONE]").map((f) => JSON.parse(f))
          .map((c) => c.choices[0]?.delta?.content ?? "").join("")
        : (await res.json()).choices[0].message.content;
      const images = text.split("\n").filter((l: string) => l.startsWith("!["));
      assertEquals(images.length, (body.batch_size as number | undefined) ?? 1);
    });
  }
  const [qwen, kolors, edit] = fake.received.slice(-4, -1).map((r) => r.body);
  assertEquals(qwen.cfg, 7.5, "guidance_scale reaches Qwen-Image as cfg");
  assertEquals([qwen.image_size, qwen.num_inference_steps, qwen.seed], ["1664x928", 30, 12345]);
  assertEquals(qwen.negative_prompt, "blurry, low quality");
  assertEquals(kolors.batch_size, 2);
  assertEquals([typeof edit.image, typeof edit.image2, edit.image3], [
    "string",
    "string",
    undefined,
  ]);
});

Deno.test("README Responses API example works as written", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const [example] = curlExamples("/v1/responses");
  const res = await post(`${server.url}/v1/responses`, example.body);
  const body = await res.json();
  assertEquals(res.status, 200, JSON.stringify(body));
  assertEquals(body.output.map((o: { type: string }) => o.type), [
    "image_generation_call",
    "message",
  ]);
  assertEquals(fake.received.at(-1)!.body.image_size, "1664x928");
});

Deno.test("README size table matches the size mapping", () => {
  const section = API.slice(API.indexOf("### Sizes"), API.indexOf("### Aliases"));
  const rows = section.split("\n").filter((l) => l.startsWith("| `") && !l.startsWith("| `size`"));
  const header = section.split("\n").find((l) => l.startsWith("| `size`"))!;
  const names = header.split("|").slice(2, -1).map((c) => c.trim());
  const models = names.map((n) => MODELS.find((m) => m.id.endsWith(`/${n}`))!);
  assertEquals(rows.length >= 20, true);
  for (const row of rows) {
    const cells = row.split("|").slice(1, -1).map((c) => c.trim().replaceAll("`", ""));
    models.forEach((m, i) =>
      assertEquals(resolveImageSize(m, { size: cells[0] }), cells[i + 1], `${m.id} ${cells[0]}`)
    );
  }
});

Deno.test("README model table lists every registry entry", () => {
  for (const m of MODELS) assertEquals(API.includes(`| \`${m.id}\``), true, m.id);
  assertEquals(findModel("qwen/qwen-image")?.id, "Qwen/Qwen-Image");
});

Deno.test("README images/generations example works as written", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const examples = curlExamples("/v1/images/generations");
  assertEquals(examples.length, 1);
  const res = await post(`${server.url}/v1/images/generations`, examples[0].body);
  assertEquals(res.status, 200);
  assertEquals(typeof (await res.json()).data[0].b64_json, "string");
  assertEquals(fake.received.at(-1)!.body.image_size, "1664x928");
});

Deno.test("the async image task examples work as written", async () => {
  await using fake = startFakeUpstream();
  const store = await Deno.makeTempDir();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, IMAGE_STORE: store });
  const [example] = curlExamples("/v1/images/generations/async");
  const res = await post(`${server.url}/v1/images/generations/async`, example.body);
  assertEquals(res.status, 202);
  await res.body?.cancel();
  const snippet = [...API.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1])
    .find((code) => code.includes("/v1/images/generations/async"))!;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(
    file,
    snippet.replace("http://localhost:8000", server.url).replace("sk-...", TEST_KEY),
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", file],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  assert(new TextDecoder().decode(out.stdout).startsWith(`${server.url}/images/`));
  await Deno.remove(file);
  await Deno.remove(store, { recursive: true });
});

Deno.test("README alias table matches the built-in aliases", async () => {
  const { DEFAULT_ALIASES } = await import("../lib/config.ts");
  const section = API.slice(API.indexOf("### Aliases"), API.indexOf("## Chat completions"));
  for (const [alias, target] of Object.entries(DEFAULT_ALIASES)) {
    const row = section.split("\n").find((l) => l.startsWith(`| \`${alias}\``));
    assertEquals(row?.includes(target.generate), true, alias);
    if (target.edit) assertEquals(row?.includes(target.edit), true, alias);
  }
});

Deno.test("README configuration table and flag table cover every variable and flag", async () => {
  const { ENV_NAMES } = await import("../lib/config.ts");
  const { FLAG_ENV } = await import("../lib/cli.ts");
  const { PROMPT_FLAGS } = await import("../lib/openai/prompt_flags.ts");
  const config = CONFIGURATION;
  const rows = config.split("\n").filter((l) => l.startsWith("| `"))
    .map((l) => l.split("|").slice(1, 3).map((c) => c.trim().replaceAll("`", "")));
  const table = new Map(rows.map(([name, flag]) => [name, flag]));
  for (const name of ENV_NAMES) assertEquals(table.has(name), true, name);
  for (const [flag, name] of Object.entries(FLAG_ENV)) {
    assertEquals(table.get(name), `--${flag}`, flag);
  }
  const flags = API.slice(API.indexOf("### Prompt flags"), API.indexOf("### Progress"));
  for (const flag of Object.keys(PROMPT_FLAGS)) {
    assertEquals(flags.includes(`--${flag}`), true, flag);
  }
});

Deno.test(
  "README video example works as written",
  {},
  async () => {
    await using fake = startFakeUpstream();
    await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, KV_PATH: ":memory:" });
    const examples = curlExamples("/v1/videos");
    assertEquals(examples.length, 1);
    const res = await post(`${server.url}/v1/videos`, examples[0].body);
    assertEquals(res.status, 200, await res.clone().text());
    assertEquals((await res.json()).status, "queued");
    assertEquals(fake.received.at(-1)!.body.image_size, "1280x720");
  },
);

Deno.test(
  "the README's client snippet runs as written, against the server",
  {},
  async () => {
    const snippet = /```ts\n([\s\S]*?)```/.exec(TEXT["README.md"])![1];
    await using fake = startFakeUpstream();
    const store = await Deno.makeTempDir();
    await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, IMAGE_STORE: store });
    const file = await Deno.makeTempFile({ suffix: ".ts" });
    await Deno.writeTextFile(
      file,
      snippet.replace("http://localhost:8000/v1", `${server.url}/v1`).replace("sk-...", TEST_KEY),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--config", new URL("../deno.dev.json", import.meta.url).pathname, "-A", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const printed = new TextDecoder().decode(out.stdout);
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    assert(printed.startsWith(`${server.url}/images/`), printed);
    await Deno.remove(file);
    await Deno.remove(store, { recursive: true });
  },
);
