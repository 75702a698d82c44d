import { assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { loadConfig } from "../lib/config.ts";
import { VERSION } from "../lib/version.ts";
import { mainCommand, spawnMain, TASK_PERMISSIONS } from "./_spawn.ts";

/** Runs main.ts the way the compiled binary would: flags on the command line. */
const runMain = mainCommand;

Deno.test("version in lib/version.ts matches deno.json", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assertEquals(VERSION, denoJson.version);
});

Deno.test("--help and --version", async () => {
  const help = await runMain(["--help"]).output();
  assertEquals(help.code, 0);
  const text = new TextDecoder().decode(help.stdout);
  for (
    const flag of ["--port", "--host", "--base-url", "--timeout-ms", "--keepalive-ms", "--demo"]
  ) {
    assertStringIncludes(text, flag);
  }
  const version = await runMain(["--version"]).output();
  assertEquals(new TextDecoder().decode(version.stdout).trim(), VERSION);
});

Deno.test("bad configuration stops start-up with a message naming the variable", async (t) => {
  const cases: [string[], Record<string, string>, string][] = [
    [[], { PORT: "eighty" }, "PORT"],
    [[], { UPSTREAM_TIMEOUT_MS: "-5" }, "UPSTREAM_TIMEOUT_MS"],
    [[], { KEEPALIVE_MS: "0" }, "KEEPALIVE_MS"],
    [[], { SILICONFLOW_BASE_URL: "not a url" }, "SILICONFLOW_BASE_URL"],
    [[], { MODEL_ALIASES: "dall-e-3=No/Such-Model" }, "MODEL_ALIASES"],
    [["--port", "99999"], {}, "PORT"],
    [["--bogus"], {}, "--bogus"],
    [[], { SILICONFLOW_API_KEY: "sk-owner-0000000000000000000000" }, "PROXY_API_KEYS"],
    [[], { MAX_CONCURRENCY: "0" }, "MAX_CONCURRENCY"],
  ];
  for (const [args, env, name] of cases) {
    await t.step(`${args.join(" ")} ${JSON.stringify(env)}`, async () => {
      const out = await runMain(args, env).output();
      assertEquals(out.code, 2);
      const stderr = new TextDecoder().decode(out.stderr);
      assertStringIncludes(stderr, name);
      assertEquals(
        stderr.includes("sk-owner-0000000000000000000000"),
        false,
        "the key is not printed",
      );
    });
  }
});

Deno.test("config defaults and overrides", () => {
  const defaults = loadConfig(() => undefined);
  assertEquals(
    [
      defaults.port,
      defaults.host,
      defaults.baseUrl,
      defaults.upstreamTimeoutMs,
      defaults.keepAliveMs,
    ],
    [8000, "0.0.0.0", "https://api.siliconflow.cn/v1", 180000, 10000],
  );
  // A library writes nothing it did not ask for; the server keeps images and KV in ./data.
  assertEquals([defaults.imageStore, defaults.kvPath], [undefined, ":memory:"]);
  const server = loadConfig(() => undefined, { dataDir: true });
  assertEquals([server.imageStore?.kind, server.kvPath], ["local", "./data/kv.sqlite3"]);
  const env: Record<string, string> = {
    SILICONFLOW_BASE_URL: "https://api.siliconflow.com/v1/",
    MODEL_ALIASES: "my-edit=Qwen/Qwen-Image|Qwen/Qwen-Image-Edit, dall-e-3=Kwai-Kolors/Kolors",
  };
  const custom = loadConfig((n) => env[n]);
  assertEquals(custom.baseUrl, "https://api.siliconflow.com/v1");
  assertEquals(custom.modelAliases["my-edit"], {
    generate: "Qwen/Qwen-Image",
    edit: "Qwen/Qwen-Image-Edit",
  });
  assertEquals(custom.modelAliases["dall-e-3"].generate, "Kwai-Kolors/Kolors");
});

Deno.test("the entry module serves the demo from flags, as the binary would", async () => {
  const server = await spawnMain(["--demo"]);
  try {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({
        model: "Qwen/Qwen-Image",
        messages: [{ role: "user", content: "a tree" }],
      }),
    });
    const content: string = (await res.json()).choices[0].message.content;
    const url = /\((http[^)]+)\)/.exec(content)![1];
    // `deno task demo` may write ./data: the demo's images are stored, and linked from there.
    assertMatch(url, new RegExp(`^${server.url.replaceAll(".", "\\.")}/images/`));
    const png = new Uint8Array(await (await fetch(url)).arrayBuffer());
    assertEquals([...png.slice(1, 4)], [80, 78, 71]);
    const streamed = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({
        model: "Kwai-Kolors/Kolors",
        stream: true,
        messages: [{ role: "user", content: "a tree" }],
      }),
    });
    const text = await streamed.text();
    assertMatch(text, /\/images\/[\w-]{22}\.png/);
    assertStringIncludes(text, "data: [DONE]");
  } finally {
    await server.stop();
  }
  assertStringIncludes(await server.output, "demo mode");
});

Deno.test("one permission set for every task that runs the server: the variables it reads, and those Deno reads for it", async () => {
  const { ENV_NAMES } = await import("../lib/config.ts");
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const set = denoJson.permissions.server;
  // DENO_DEPLOYMENT_ID tells Deploy apart; DENO_KV_ACCESS_TOKEN is read by Deno.openKv for a
  // KV Connect URL in KV_PATH.
  const expected = [...ENV_NAMES, "DENO_DEPLOYMENT_ID", "DENO_KV_ACCESS_TOKEN"].sort();
  assertEquals([...set.env].sort(), expected);
  assertEquals([set.net, set.read, set.write], [true, ["./data"], ["./data"]]);
  for (const task of ["start", "start:parallel", "dev", "demo", "compile"]) {
    const command: string = denoJson.tasks[task];
    assertStringIncludes(command, "-P=server", task);
    // No permission, and no --unstable-kv ("unstable" in deno.json says it), beside the set.
    assertEquals(/--allow-|--unstable-kv|-A\b/.test(command), false, task);
  }
});

Deno.test("`deno serve serve.ts` serves the default export and opens no second listener", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const freePort = (listener.addr as Deno.NetAddr).port;
  listener.close(); // PORT points at a port nobody uses: main.ts must not take it
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "serve",
      "--unstable-no-legacy-abort",
      ...TASK_PERMISSIONS,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      new URL("../serve.ts", import.meta.url).pathname,
    ],
    env: { NO_COLOR: "1", DEMO: "true", PORT: String(freePort) },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let seen = "";
  const read = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (text) => void (seen += text) }),
    );
  const output = Promise.all([read(child.stdout), read(child.stderr)]);
  try {
    const deadline = Date.now() + 10_000;
    let port = "";
    while (!port && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      port = /listening on http:\/\/127\.0\.0\.1:(\d+)\/v1 \(deno serve\)/.exec(seen)?.[1] ?? "";
    }
    const health = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json();
    assertEquals(health.mode, "demo");
    await new Promise((r) => setTimeout(r, 200));
    const second = await fetch(`http://127.0.0.1:${freePort}/healthz`).then(
      async (res) => (await res.body?.cancel(), true),
      () => false,
    );
    assertEquals(second, false, "serve.ts did not open its own listener on PORT");
    assertEquals(seen.includes("(Deno.serve)"), false, "no listener of its own");
    assertEquals(/warning/i.test(seen), false, seen);
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await output;
  }
});

Deno.test("a quiet, true start: no warning, and the line names the playground and the key mode", async () => {
  const demo = await spawnMain(["--demo"]);
  await demo.stop("SIGTERM");
  const output = await demo.output;
  assertEquals(/warning/i.test(output), false, output);
  assertMatch(output, /listening on http:\/\/127\.0\.0\.1:\d+\/v1 \(Deno\.serve\)/);
  assertStringIncludes(output, "[keys: no key needed (demo)]");
  assertMatch(output, /; playground: http:\/\/127\.0\.0\.1:\d+\/\n/);
  const keyed = await spawnMain([], {
    SILICONFLOW_API_KEY: "sk-owner-4444444444444444444444",
    PROXY_API_KEYS: "pk-access-0123456789",
    PLAYGROUND: "false",
  });
  await keyed.stop("SIGTERM");
  const line = (await keyed.output).split("\n")[0];
  assertStringIncludes(line, "[keys: server-key]");
  assertEquals(line.includes("playground"), false, line);
});
