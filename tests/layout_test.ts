/**
 * The layout's one import rule, read from the module graph (`deno info --json`): the OpenAI
 * surface → generation → the SiliconFlow side, each on the server plumbing, which imports none of
 * them; no import cycle. Only the composition root (`lib/handler.ts`) imports across every folder.
 */
import { assert, assertEquals } from "@std/assert";
import { TASK_V8_FLAGS } from "./_spawn.ts";

const LIB = new URL("../lib/", import.meta.url).href;

/** What each part of `lib/` may import, besides itself. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  "values.ts": [],
  "time_limit.ts": [],
  "bytes.ts": [],
  "server": [],
  "siliconflow": ["server", "config.ts"],
  "generation": ["siliconflow", "server"],
  "openai": [
    "app.ts",
    "jobs",
    "generation",
    "siliconflow",
    "store",
    "playground",
    "quota",
    "server",
    "version.ts",
  ],
  "jobs": ["generation", "siliconflow", "store", "quota", "server", "config.ts", "kv.ts"],
  "mcp": ["openai", "app.ts", "generation", "server", "version.ts", "png.ts"],
  "demo": ["siliconflow", "server", "png.ts"],
  "png.ts": [],
  "playground": [],
  "quota": ["server", "kv.ts"],
  "kv.ts": ["server"],
  "store": ["server", "config.ts", "config_values.ts"],
  "config.ts": ["generation", "server", "store", "config_values.ts"],
  "config_values.ts": ["server"],
  "cli.ts": ["config.ts"],
  "permissions.ts": ["config.ts"],
  "app.ts": ["generation", "jobs", "quota", "server", "siliconflow", "store", "config.ts"],
  "boot.ts": [
    "cli.ts",
    "config.ts",
    "handler.ts",
    "openai",
    "mcp",
    "permissions.ts",
    "server",
    "version.ts",
  ],
  "version.ts": [],
  "handler.ts": [
    "app.ts",
    "openai",
    "mcp",
    "jobs",
    "demo",
    "generation",
    "siliconflow",
    "store",
    "quota",
    "server",
    "config.ts",
    "kv.ts",
  ],
};

/** Leaves every part may import: they import nothing of lib/ (their own rule above says so). */
const LEAVES = ["values.ts", "time_limit.ts", "bytes.ts"];

/** `server`, `openai`, … for a file in a folder of lib/; the file name for one at its root. */
function part(specifier: string): string | undefined {
  if (!specifier.startsWith(LIB)) return undefined;
  return specifier.slice(LIB.length).split("/")[0];
}

interface ModuleInfo {
  specifier: string;
  dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
}

async function graph(entry: string): Promise<ModuleInfo[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert(out.success, "deno info failed");
  return JSON.parse(new TextDecoder().decode(out.stdout)).modules;
}

Deno.test("layout: imports follow openai → generation → siliconflow → server", async () => {
  const modules = await graph(new URL("../lib/boot.ts", import.meta.url).pathname);
  const broken: string[] = [];
  const crossing = new Map<string, Set<string>>();
  for (const module of modules) {
    const from = part(module.specifier);
    if (!from) continue;
    assert(from in MAY_IMPORT, `a new part of lib/: ${from} (add it to the rule)`);
    for (const dep of module.dependencies ?? []) {
      for (const target of [dep.code?.specifier, dep.type?.specifier]) {
        const to = target && part(target);
        if (!to || to === from) continue;
        if (!MAY_IMPORT[from].includes(to) && !LEAVES.includes(to)) {
          broken.push(`${module.specifier.slice(LIB.length)} → ${target!.slice(LIB.length)}`);
        }
        if (!crossing.has(module.specifier)) crossing.set(module.specifier, new Set());
        crossing.get(module.specifier)!.add(to);
      }
    }
  }
  assertEquals(broken, [], "imports against the rule");
  const folders = ["openai", "generation", "siliconflow", "server"];
  const acrossAll = [...crossing].filter(([, to]) => folders.every((f) => to.has(f)));
  assertEquals(acrossAll.map(([m]) => m.slice(LIB.length)), ["handler.ts"]);
});

Deno.test("layout: no import cycle among the modules of lib/", async () => {
  const modules = await graph(new URL("../lib/boot.ts", import.meta.url).pathname);
  const edges = new Map<string, string[]>();
  for (const module of modules) {
    if (!part(module.specifier)) continue;
    const deps = (module.dependencies ?? []).flatMap((d) => [d.code?.specifier, d.type?.specifier])
      .filter((s): s is string => s !== undefined && part(s) !== undefined);
    edges.set(module.specifier, deps);
  }
  // Depth-first, colouring each module; an edge back to a module on the path is a cycle.
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (node: string, path: string[]) => {
    state.set(node, "open");
    for (const next of edges.get(node) ?? []) {
      if (state.get(next) === "open") {
        const loop = [...path.slice(path.indexOf(next)), node, next];
        cycles.push(loop.map((m) => m.slice(LIB.length)).join(" → "));
      } else if (!state.has(next)) visit(next, [...path, node]);
    }
    state.set(node, "done");
  };
  for (const node of edges.keys()) if (!state.has(node)) visit(node, []);
  assertEquals(cycles, []);
});

// Modules are split by concern, not by size: a long module is a hint to look at, so the test
// names it (a warning in the output) rather than failing.
Deno.test("layout: modules over 300 lines are named (a warning, not a failure)", async () => {
  for await (const file of walk(new URL("../lib/", import.meta.url))) {
    const lines = (await Deno.readTextFile(file)).split("\n").length;
    if (lines > 300 && !file.pathname.endsWith("_test.ts")) {
      console.warn(
        `warning: ${file.pathname.slice(file.pathname.indexOf("/lib/") + 1)} has ${lines} lines`,
      );
    }
  }
});

async function* walk(dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* walk(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

Deno.test("dependencies by role: the server's imports are its own; tests and benchmarks add theirs", async () => {
  const read = async (name: string) =>
    JSON.parse(await Deno.readTextFile(new URL(`../${name}`, import.meta.url)));
  const server: Record<string, string> = (await read("deno.json")).imports;
  const dev: Record<string, string> = (await read("deno.dev.json")).imports;
  // The server's map holds only what lib/ and main.ts import; the dev map repeats it exactly.
  assertEquals(Object.keys(server).sort(), [
    "aws4fetch",
    "zod",
  ]);
  for (const [name, target] of Object.entries(server)) assertEquals(dev[name], target, name);
});

Deno.test("the tasks that run the server, and the servers the tests spawn, share their V8 flags", async () => {
  const tasks: Record<string, string> = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  ).tasks;
  const flags = TASK_V8_FLAGS.map((flag) => `--v8-flags=${flag}`).join(" ");
  for (const name of ["start", "start:parallel", "dev", "demo", "compile"]) {
    assert(tasks[name].includes(flags), `${name} runs with ${flags}`);
  }
});
