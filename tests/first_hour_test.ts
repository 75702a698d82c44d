/**
 * Errors a newcomer meets, in their words: a missing `model` or `messages` says so; a key sent
 * without `Bearer` is taken as the key; a prompt past the documented limit is a 400 naming the
 * field, on chat, the Images API, the Videos API and the Responses API alike. And safe by default:
 * the README's Responses example works in demo mode (its image is read from the store, never
 * fetched back over HTTP), and a client's X-Forwarded-Host neither steers a request nor a link.
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { MAX_PROMPT_CHARS } from "../lib/generation/plan.ts";
import { post, startFakeUpstream, startServer, TEST_KEY } from "./_helpers.ts";
import { spawnMain } from "./_spawn.ts";

const opts = {};

Deno.test("a chat request without model or messages says which is missing", opts, async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, KV_PATH: ":memory:" });
  for (
    const [body, param, words] of [
      [{ messages: [{ role: "user", content: "a cat" }] }, "model", "model is required"],
      [{ model: "Qwen/Qwen-Image" }, "messages", "messages is required"],
    ] as const
  ) {
    const res = await post(`${server.url}/v1/chat/completions`, body);
    const json = await res.json();
    assertEquals([res.status, json.error.param], [400, param], JSON.stringify(json));
    assertStringIncludes(json.error.message, words);
  }
});

Deno.test("a key sent without 'Bearer' is taken as the key", opts, async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, KV_PATH: ":memory:" });
  const res = await fetch(`${server.url}/v1/images/generations`, {
    method: "POST",
    headers: { authorization: TEST_KEY, "content-type": "application/json" },
    body: JSON.stringify({ model: "Qwen/Qwen-Image", prompt: "a cat" }),
  });
  assertEquals(res.status, 200, await res.clone().text());
  await res.body?.cancel();
  assertEquals(fake.received.at(-1)!.authorization, `Bearer ${TEST_KEY}`);
  // An empty scheme is still no key.
  const bare = await fetch(`${server.url}/v1/images/generations`, {
    method: "POST",
    headers: { authorization: "Bearer", "content-type": "application/json" },
    body: JSON.stringify({ model: "Qwen/Qwen-Image", prompt: "a cat" }),
  });
  assertEquals(bare.status, 401);
  await bare.body?.cancel();
});

Deno.test("a prompt past the limit is a 400 naming the field, on every route", opts, async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, KV_PATH: ":memory:" });
  const long = "x".repeat(MAX_PROMPT_CHARS + 1);
  for (
    const [path, body, param] of [
      ["/v1/chat/completions", {
        model: "Qwen/Qwen-Image",
        messages: [{ role: "user", content: long }],
      }, "messages[0].content"],
      ["/v1/images/generations", { model: "Qwen/Qwen-Image", prompt: long }, "prompt"],
      ["/v1/videos", { model: "sora-2", prompt: long }, "prompt"],
      ["/v1/responses", { model: "Qwen/Qwen-Image", input: long }, "input"],
    ] as const
  ) {
    const res = await post(`${server.url}${path}`, body);
    const json = await res.json();
    assertEquals(
      [res.status, json.error.param, json.error.code],
      [400, param, "prompt_too_long"],
      path,
    );
    assertStringIncludes(json.error.message, `at most ${MAX_PROMPT_CHARS}`);
  }
  assertEquals(fake.received.length, 0, "nothing reached SiliconFlow");
  // At the limit it goes through.
  const ok = await post(`${server.url}/v1/images/generations`, {
    model: "Qwen/Qwen-Image",
    prompt: "x".repeat(MAX_PROMPT_CHARS),
  });
  assertEquals(ok.status, 200);
  await ok.body?.cancel();
});

Deno.test(
  "the README's Responses example in demo mode, as `deno task demo` runs; a client's X-Forwarded-Host sends no request anywhere",
  opts,
  async () => {
    // A listener on the port a client names: nothing may connect to it.
    const bait = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let connections = 0;
    const accepting = (async () => {
      for await (const conn of bait) {
        connections++;
        conn.close();
      }
    })().catch(() => {});
    const named = `127.0.0.1:${(bait.addr as Deno.NetAddr).port}`;
    const server = await spawnMain(["--demo"]);
    try {
      const res = await fetch(`${server.url}/v1/responses`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-host": named },
        body: JSON.stringify({
          model: "Qwen/Qwen-Image",
          input: "A lighthouse at dusk --ar 16:9",
          tools: [{ type: "image_generation" }],
        }),
      });
      const body = await res.json();
      assertEquals(res.status, 200, JSON.stringify(body));
      const call = body.output.find((o: { type: string }) => o.type === "image_generation_call");
      const png = Uint8Array.fromBase64(call.result);
      assertEquals([...png.slice(1, 4)], [0x50, 0x4e, 0x47]);
      const text: string = body.output.at(-1).content[0].text;
      // The links name the server's own origin, not the one the client sent.
      assertStringIncludes(text, `${server.url}/images/`);
      assertEquals(text.includes(named), false);
      const chat = await (await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-host": named },
        body: JSON.stringify({
          model: "Qwen/Qwen-Image",
          messages: [{ role: "user", content: "a" }],
        }),
      })).json();
      const link = /\((http[^)]+)\)/.exec(chat.choices[0].message.content)![1];
      assertEquals(new URL(link).origin, server.url);
      // Stored media say what they are, and run nothing.
      const image = await fetch(link);
      assertEquals(image.headers.get("x-content-type-options"), "nosniff");
      assertStringIncludes(image.headers.get("content-security-policy") ?? "", "sandbox");
      await image.body?.cancel();
      assertEquals(connections, 0);
    } finally {
      await server.stop("SIGTERM");
      bait.close();
      await accepting;
    }
  },
);
