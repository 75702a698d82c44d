/**
 * The MCP endpoint through the official MCP client (`@modelcontextprotocol/sdk`), over Streamable
 * HTTP and over stdio, against the stand-in: tools listed, images made and edited (image content,
 * links that load, structured content), a video with progress, cancellation that aborts the
 * SiliconFlow call, bad arguments, keys refused and quotas counted, and DNS-rebinding protection.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { makeManagedKey, startFakeUpstream, startServer, TEST_KEY, until } from "./_helpers.ts";
import { mainArgs, spawnMain } from "./_spawn.ts";

/** The conformance tool's version the tests run. */
const CONFORMANCE = "0.1.16";

type Content = { type: string; [field: string]: unknown };

/** The status of a `POST /mcp` sent over a raw connection with the given `Host`. */
async function statusWithHost(url: string, host: string, body: string): Promise<number> {
  const { port } = new URL(url);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
  const bytes = new TextEncoder().encode(body);
  await conn.write(new TextEncoder().encode(
    `POST /mcp HTTP/1.1\r\nHost: ${host}:${port}\r\nContent-Type: application/json\r\n` +
      `Accept: application/json, text/event-stream\r\nAuthorization: Bearer ${TEST_KEY}\r\n` +
      `Content-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`,
  ));
  await conn.write(bytes);
  const answer = await new Response(conn.readable).text();
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
}

async function connect(url: string, key = TEST_KEY): Promise<Client> {
  const client = new Client({ name: "mcp-test", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    }),
  );
  return client;
}

Deno.test("MCP over Streamable HTTP: tools, images, edits, video, errors", async (t) => {
  await using fake = startFakeUpstream();
  fake.videoMs = 800;
  const store = await Deno.makeTempDir();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    IMAGE_STORE: store,
    VIDEO_POLL_MS: "100",
  });
  const client = await connect(server.url);
  try {
    await t.step("initialize and tools/list", async () => {
      assertEquals(client.getServerVersion()?.name, "siliconflow-image-proxy");
      const { tools } = await client.listTools();
      assertEquals(tools.map((tool: { name: string }) => tool.name).sort(), [
        "edit_image",
        "generate_image",
        "generate_video",
        "get_video",
        "list_models",
      ]);
      const generate = tools.find((tool: { name: string }) => tool.name === "generate_image")!;
      const props = generate.inputSchema.properties as Record<string, { description?: string }>;
      // Made from the registry: a model's own parameter, with the models that take it.
      assertMatch(props.num_inference_steps.description!, /Kwai-Kolors\/Kolors/);
      assertMatch(props.cfg.description!, /Qwen\/Qwen-Image/);
      assert(generate.outputSchema);
      await client.ping();
    });

    let made = "";
    await t.step("generate_image: image content, a lasting link, structured content", async () => {
      const progress: number[] = [];
      const result = await client.callTool(
        {
          name: "generate_image",
          arguments: { prompt: "a red kite", model: "Qwen/Qwen-Image", size: "16:9", seed: 7 },
        },
        undefined,
        { onprogress: (p: { progress: number }) => progress.push(p.progress) },
      );
      assert(!result.isError, JSON.stringify(result.content));
      const content = result.content as Content[];
      const image = content.find((c) => c.type === "image")!;
      assertEquals(image.mimeType, "image/png");
      assert(String(image.data).length > 10);
      const link = content.find((c) => c.type === "resource_link")!;
      const loaded = await fetch(String(link.uri));
      assertEquals([loaded.status, loaded.headers.get("content-type")], [200, "image/png"]);
      await loaded.body?.cancel();
      const structured = result.structuredContent as { images: { url: string; id: string }[] };
      assertEquals(structured.images[0].url, link.uri);
      made = structured.images[0].id;
      assertEquals(fake.received.at(-1)!.body.image_size, "1664x928");
      assertEquals(fake.received.at(-1)!.body.seed, 7);
      assert(progress.length >= 1, "at least the first progress notification");
    });

    await t.step("a large image is shown scaled down; its link has it whole", async () => {
      const origin = new URL(fake.baseUrl).origin;
      fake.queue.push({
        status: 200,
        body: JSON.stringify({ images: [{ url: `${origin}/noise/1400.png` }], seed: 1 }),
      });
      const result = await client.callTool({
        name: "generate_image",
        arguments: { prompt: "static", model: "Qwen/Qwen-Image" },
      });
      assert(!result.isError, JSON.stringify(result.content));
      const content = result.content as Content[];
      assertMatch(
        String(content[1].text),
        /^Image 1 \(1400x1400, [\d.]+ MB\) is shown scaled down/,
      );
      const thumbnail = Uint8Array.fromBase64(String(content[2].data));
      const view = new DataView(thumbnail.buffer);
      assertEquals([view.getUint32(16), view.getUint32(20)], [512, 512], "IHDR: 512x512");
      assert(thumbnail.length <= 1024 * 1024);
      const whole = await fetch(String(content[3].uri));
      assertEquals((await whole.bytes()).length > 1024 * 1024, true);
    });

    await t.step("edit_image: an image this server made, by its id", async () => {
      const result = await client.callTool({
        name: "edit_image",
        arguments: { prompt: "make it night", images: [made], cfg: 4 },
      });
      assert(!result.isError, JSON.stringify(result.content));
      const sent = fake.received.at(-1)!.body;
      assertEquals(sent.model, "Qwen/Qwen-Image-Edit-2509");
      assertMatch(String(sent.image), /^data:image\/png;base64,/);
    });

    await t.step("a bad argument is a tool error, in the routes' words", async () => {
      const empty = await client.callTool({ name: "generate_image", arguments: { prompt: "" } });
      assertEquals(empty.isError, true);
      assertMatch((empty.content as Content[])[0].text as string, /prompt/);
      const many = await client.callTool({
        name: "generate_image",
        arguments: { prompt: "a", n: 9 },
      });
      assertEquals(many.isError, true);
      assertMatch((many.content as Content[])[0].text as string, /\bn\b/);
      const wrongModel = await client.callTool({
        name: "generate_image",
        arguments: { prompt: "a", model: "No/Such" },
      });
      assertEquals(wrongModel.isError, true);
      assertMatch((wrongModel.content as Content[])[0].text as string, /does not exist here/);
      // Named as the tool's arguments, not as the routes' fields behind them.
      const badImage = await client.callTool({
        name: "edit_image",
        arguments: { prompt: "a", images: ["ftp://host/a.png"] },
      });
      assertMatch((badImage.content as Content[])[0].text as string, /^images\[0\] must be/);
      const badFrame = await client.callTool({
        name: "generate_video",
        arguments: { prompt: "a", image: "ftp://host/a.png", wait: false },
      });
      assertMatch((badFrame.content as Content[])[0].text as string, /^image must be/);
      const unknown = client.callTool({ name: "no_such_tool", arguments: {} });
      await assertRejects(() => unknown, Error, "Unknown tool");
    });

    await t.step("generate_video waits with progress, then links the MP4", async () => {
      const progress: number[] = [];
      const result = await client.callTool(
        {
          name: "generate_video",
          arguments: { prompt: "waves", size: "9:16" },
        },
        undefined,
        { onprogress: (p: { progress: number }) => progress.push(p.progress), timeout: 60_000 },
      );
      assert(!result.isError, JSON.stringify(result.content));
      const video = result.structuredContent as { id: string; status: string; url: string };
      assertEquals(video.status, "completed");
      const mp4 = await fetch(video.url);
      assertEquals(mp4.headers.get("content-type"), "video/mp4");
      await mp4.body?.cancel();
      assert(progress.length >= 1);
      assert(progress.every((p, i) => i === 0 || p > progress[i - 1]), "progress only grows");
      const got = await client.callTool({ name: "get_video", arguments: { id: video.id } });
      assertEquals((got.structuredContent as { status: string }).status, "completed");
      const later = await client.callTool({
        name: "generate_video",
        arguments: { prompt: "waves", wait: false },
      });
      assertMatch((later.content as Content[])[0].text as string, /Call get_video/);
    });

    await t.step("list_models", async () => {
      const result = await client.callTool({ name: "list_models", arguments: {} });
      const { models } = result.structuredContent as { models: { id: string; kind: string }[] };
      const kind = (id: string) => models.find((m) => m.id === id)?.kind;
      assertEquals(
        [kind("Qwen/Qwen-Image"), kind("Qwen/Qwen-Image-Edit"), kind("Wan-AI/Wan2.2-T2V-A14B")],
        [
          "image",
          "edit",
          "video",
        ],
      );
      assertEquals(kind("gpt-image-2"), "alias");
    });

    await t.step("notifications/cancelled aborts the SiliconFlow call", async () => {
      fake.delayMs = 10_000;
      const before = fake.aborted();
      const post = (message: Record<string, unknown>) =>
        fetch(`${server.url}/mcp`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${TEST_KEY}`,
            "content-type": "application/json",
            accept: "application/json, text/event-stream",
            "mcp-protocol-version": "2025-06-18",
          },
          body: JSON.stringify({ jsonrpc: "2.0", ...message }),
        });
      const call = await post({
        id: "call-7",
        method: "tools/call",
        params: { name: "generate_image", arguments: { prompt: "slow" } },
      });
      assertMatch(call.headers.get("content-type") ?? "", /^text\/event-stream/);
      await until("the call reaches SiliconFlow", () => fake.inFlight() === 1, 10_000);
      const cancelled = await post({
        method: "notifications/cancelled",
        params: { requestId: "call-7", reason: "the user changed their mind" },
      });
      assertEquals(cancelled.status, 202);
      await until("SiliconFlow's call is aborted", () => fake.aborted() === before + 1, 10_000);
      // The stream still ends with the call's answer.
      assertMatch(await call.text(), /"id":"call-7"/);
      fake.delayMs = 0;
    });

    await t.step("cancellation aborts the SiliconFlow call", async () => {
      fake.delayMs = 10_000;
      const controller = new AbortController();
      const call = client.callTool(
        { name: "generate_image", arguments: { prompt: "slow" } },
        undefined,
        { signal: controller.signal },
      );
      await until("the call reaches SiliconFlow", () => fake.inFlight() === 1, 10_000);
      controller.abort();
      await assertRejects(() => call);
      await until("SiliconFlow's call is aborted", () => fake.aborted() === 2, 10_000);
      fake.delayMs = 0;
    });
  } finally {
    await client.close();
    await Deno.remove(store, { recursive: true });
  }
});

Deno.test("MCP: a refused key, a managed key's quota, and DNS-rebinding protection", async () => {
  await using fake = startFakeUpstream();
  const ADMIN = "admin-secret-mcp-0123456789";
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: "sk-owner-3333333333333333333333",
    ADMIN_API_KEY: ADMIN,
    KV_PATH: ":memory:",
  });
  await assertRejects(() => connect(server.url, "sk-wrong-key-000000000000"));
  const { key } = await makeManagedKey(server.url, ADMIN, { name: "mcp", images_per_day: 1 });
  const client = await connect(server.url, key);
  try {
    const args = { name: "generate_image", arguments: { prompt: "a", model: "Qwen/Qwen-Image" } };
    assert(!(await client.callTool(args)).isError);
    const second = await client.callTool(args);
    assertEquals(second.isError, true);
    assertMatch((second.content as Content[])[0].text as string, /limit/i);
    const usage = await (await fetch(`${server.url}/v1/usage`, {
      headers: { authorization: `Bearer ${key}` },
    })).json();
    assertEquals(usage.remaining.today, 0);
    assertEquals(usage.data.map((row: { images: number }) => row.images), [1]);
  } finally {
    await client.close();
  }

  // A browser page on another origin is refused; a server on loopback refuses a foreign Host.
  const init = {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: {
      protocolVersion: "2025-11-25",
      capabilities: {},
      clientInfo: { name: "x", version: "1" },
    },
  };
  const headers = {
    authorization: `Bearer ${key}`,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  };
  const foreign = await fetch(`${server.url}/mcp`, {
    method: "POST",
    headers: { ...headers, origin: "http://evil.example" },
    body: JSON.stringify(init),
  });
  assertEquals(foreign.status, 403);
  await foreign.body?.cancel();
  await using local = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, HOST: "127.0.0.1" });
  // fetch sets Host itself; a page whose name resolves to 127.0.0.1 sends its own name.
  assertEquals(await statusWithHost(local.url, "evil.example", JSON.stringify(init)), 403);
  assertEquals(await statusWithHost(local.url, "localhost", JSON.stringify(init)), 200);
  const fine = await fetch(`${local.url}/mcp`, {
    method: "POST",
    headers: { ...headers, origin: local.url, authorization: `Bearer ${TEST_KEY}` },
    body: JSON.stringify(init),
  });
  assertEquals(fine.status, 200);
  assertEquals((await fine.json()).result.protocolVersion, "2025-11-25");
  const get = await fetch(`${local.url}/mcp`);
  assertEquals(get.status, 405);
  await get.body?.cancel();
});

Deno.test("MCP over stdio (deno task mcp): tools and an image, the log on stderr", async () => {
  await using fake = startFakeUpstream();
  const dir = await Deno.makeTempDir();
  const args = mainArgs(["--mcp"], {
    permissions: [`--allow-read=${dir}`, `--allow-write=${dir}`],
  });
  const transport = new StdioClientTransport({
    command: Deno.execPath(),
    args,
    env: {
      SILICONFLOW_BASE_URL: fake.baseUrl,
      SILICONFLOW_API_KEY: TEST_KEY,
      KV_PATH: `${dir}/kv.sqlite3`,
      IMAGE_STORE: `${dir}/images`,
      PORT: "0",
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? "",
    },
    stderr: "pipe",
  });
  const client = new Client({ name: "stdio-test", version: "1.0.0" });
  await client.connect(transport);
  try {
    const { tools } = await client.listTools();
    assertEquals(tools.length, 5);
    const result = await client.callTool({
      name: "generate_image",
      arguments: { prompt: "a lantern", model: "Kwai-Kolors/Kolors" },
    });
    assert(!result.isError, JSON.stringify(result.content));
    const link = (result.content as Content[]).find((c) => c.type === "resource_link")!;
    assertMatch(String(link.uri), /^http:\/\/127\.0\.0\.1:\d+\/images\//);
    const loaded = await fetch(String(link.uri));
    assertEquals(loaded.status, 200);
    await loaded.body?.cancel();
    assertEquals(fake.received.at(-1)!.authorization, `Bearer ${TEST_KEY}`);
  } finally {
    await client.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the official MCP conformance tool passes the scenarios that apply", async () => {
  // As people run it: main.ts with the tasks' permissions, demo mode, on loopback.
  const dir = await Deno.makeTempDir();
  const server = await spawnMain(["--demo"], {
    KV_PATH: `${dir}/kv.sqlite3`,
    IMAGE_STORE: `${dir}/images`,
  }, { permissions: [`--allow-read=${dir}`, `--allow-write=${dir}`] });
  try {
    for (
      const scenario of ["server-initialize", "ping", "tools-list", "dns-rebinding-protection"]
    ) {
      // It needs a newer Node than this machine's; Deno runs it.
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          // Outside the project: its config and lock files stay the server's own.
          "--no-config",
          "--no-lock",
          `npm:@modelcontextprotocol/conformance@${CONFORMANCE}`,
          "server",
          "--url",
          `${server.url}/mcp`,
          "--scenario",
          scenario,
        ],
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assertMatch(text, /Passed: (\d+)\/\1, 0 failed/, `${scenario}:\n${text.slice(-2000)}`);
    }
  } finally {
    await server.stop("SIGTERM");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("MCP: MAX_CONCURRENCY holds for tool calls; the one turned away says why", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, MAX_CONCURRENCY: "1" });
  const client = await connect(server.url);
  try {
    fake.delayMs = 2_000;
    const args = { name: "generate_image", arguments: { prompt: "a", model: "Qwen/Qwen-Image" } };
    const first = client.callTool(args);
    await until("the first call holds the slot", () => fake.inFlight() === 1, 10_000);
    const second = await client.callTool(args);
    assertEquals(second.isError, true);
    assertMatch((second.content as Content[])[0].text as string, /This server is busy: 1 /);
    assert(!(await first).isError);
  } finally {
    fake.delayMs = 0;
    await client.close();
  }
});
