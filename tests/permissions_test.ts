/**
 * The server as `deno task start` runs it (deno.json's "server" permission set): a configured path
 * it may not use stops start-up with a message naming the variable and the permission to add; a
 * path it is granted works; a KV Connect URL gets its token (Deno reads DENO_KV_ACCESS_TOKEN, which
 * the set grants), checked against a stand-in that records what it is sent.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { missingPermission } from "../lib/permissions.ts";
import { mainCommand, spawnMain } from "./_spawn.ts";

const opts = {};

Deno.test("missingPermission: only what the environment sets is checked, and the message says what to add", () => {
  const onlyData = (d: Deno.PermissionDescriptor): Deno.PermissionState =>
    ("path" in d && String(d.path).startsWith("./data")) ||
      ("variable" in d && d.variable === "DENO_KV_ACCESS_TOKEN")
      ? "granted"
      : "prompt";
  const local = (root: string) => ({ kind: "local" as const, root, ttlDays: 30, maxBytes: 1 });
  const all = () => true;
  assertEquals(
    missingPermission(
      { imageStore: local("./data/images"), kvPath: "./data/kv.sqlite3" },
      all,
      onlyData,
    ),
    undefined,
  );
  // A default that is not granted is left to the store's own warning.
  assertEquals(
    missingPermission({ imageStore: local("/srv/x"), kvPath: undefined }, () => false, onlyData),
    undefined,
  );
  const store = missingPermission(
    { imageStore: local("/srv/sf/images"), kvPath: undefined },
    all,
    onlyData,
  )!;
  assertStringIncludes(store, "IMAGE_STORE=/srv/sf/images");
  assertStringIncludes(store, "--allow-read=/srv/sf/images --allow-write=/srv/sf/images");
  const kv = missingPermission(
    { imageStore: undefined, kvPath: "/srv/sf/kv.sqlite3" },
    all,
    onlyData,
  )!;
  assertStringIncludes(kv, "KV_PATH=/srv/sf/kv.sqlite3");
  assertStringIncludes(kv, "--allow-write=/srv/sf.");
  assertEquals(
    missingPermission({ imageStore: undefined, kvPath: "https://kv.example/x" }, all, onlyData),
    undefined,
  );
  const token = missingPermission(
    { imageStore: undefined, kvPath: "https://kv.example/x" },
    all,
    () => "prompt",
  )!;
  assertStringIncludes(token, "DENO_KV_ACCESS_TOKEN");
  assertEquals(
    missingPermission({ imageStore: undefined, kvPath: ":memory:" }, all, () => "prompt"),
    undefined,
  );
});

Deno.test(
  "start-up under the tasks' permissions: IMAGE_STORE or KV_PATH outside ./data stops it, naming the variable and the flag",
  opts,
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      for (
        const [variable, value, flag] of [
          ["IMAGE_STORE", `${dir}/images`, `--allow-write=${dir}/images`],
          ["KV_PATH", `${dir}/kv.sqlite3`, `--allow-write=${dir}`],
        ]
      ) {
        const out = await mainCommand(["--port", "0"], { DEMO: "true", [variable]: value })
          .output();
        const text = new TextDecoder().decode(out.stderr);
        assertEquals(out.code, 2, text);
        assertStringIncludes(text, `${variable}=${value}`);
        assertStringIncludes(text, flag);
      }
      // Granted, the same settings start, and a video lands in that store.
      const server = await spawnMain(["--demo"], {
        IMAGE_STORE: `${dir}/images`,
        KV_PATH: `${dir}/kv.sqlite3`,
        VIDEO_POLL_MS: "100",
      }, { permissions: [`--allow-read=${dir}`, `--allow-write=${dir}`] });
      try {
        const res = await fetch(`${server.url}/v1/videos`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ prompt: "outside ./data" }),
        });
        const job = await res.json();
        assertEquals(res.status, 200, JSON.stringify(job));
        for (
          let i = 0;
          i < 200 && ![...Deno.readDirSync(`${dir}/images`)].some((e) => e.name.endsWith(".mp4"));
          i++
        ) {
          await new Promise((r) => setTimeout(r, 100));
        }
        assert([...Deno.readDirSync(`${dir}/images`)].some((e) => e.name.endsWith(".mp4")));
      } finally {
        await server.stop("SIGTERM");
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "KV Connect under the tasks' permissions: Deno.openKv sends DENO_KV_ACCESS_TOKEN to the URL in KV_PATH",
  opts,
  async () => {
    const seen: string[] = [];
    await using standIn = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (req) => {
        seen.push(req.headers.get("authorization") ?? "");
        await req.body?.cancel();
        // Not a KV Connect server: the server then answers the store's 503, as for any outage.
        return new Response("not a KV Connect server", { status: 500 });
      },
    );
    const server = await spawnMain(["--demo"], {
      KV_PATH: `http://127.0.0.1:${standIn.addr.port}`,
      DENO_KV_ACCESS_TOKEN: "kv-token-0123456789",
      IMAGE_STORE: "none",
    });
    try {
      const res = await fetch(`${server.url}/v1/videos`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "on KV Connect" }),
      });
      const body = await res.json();
      assertEquals([res.status, body.error.code], [503, "job_store_unavailable"]);
      assertEquals(seen[0], "Bearer kv-token-0123456789");
    } finally {
      await server.stop("SIGTERM");
    }
    const output = await server.output;
    assertEquals(
      output.includes("kv-token-0123456789"),
      false,
      "the token never reaches a log line",
    );
    assertEquals(output.includes("NotCapable"), false, output);
  },
);
