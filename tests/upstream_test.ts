import { assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import {
  post,
  type RawFault,
  readSse,
  startFakeUpstream,
  startRawUpstream,
  startServer,
  TEST_KEY,
  until,
} from "./_helpers.ts";

const body = (stream = false) => ({
  model: "Qwen/Qwen-Image",
  messages: [{ role: "user", content: "a lighthouse" }],
  stream,
});

/** Reads an answer, streamed or not, as the error object it carries. */
async function errorOf(res: Response, stream: boolean) {
  if (!stream) return { status: res.status, error: (await res.json()).error, headers: res.headers };
  assertEquals(res.status, 200);
  const frames = await readSse(res);
  assertEquals(JSON.parse(frames[0]).choices[0].delta.role, "assistant");
  const last = JSON.parse(frames.at(-1)!);
  assertEquals(frames.includes("[DONE]"), false, "no [DONE] after an error");
  return { status: 200, error: last.error, headers: res.headers };
}

Deno.test("upstream statuses map to OpenAI errors, streamed and not", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const chat = `${server.url}/v1/chat/completions`;
  const cases: [number, string, number, string, Record<string, string>?][] = [
    [
      400,
      '{"code":20012,"message":"Model does not exist. Please check it carefully.","data":null}',
      400,
      "Model does not exist",
    ],
    [401, '"Invalid token"', 401, "Invalid token"],
    [401, "Invalid token", 401, "Invalid token"],
    [403, "Forbidden", 403, "Forbidden"],
    [
      429,
      '{"message":"Request was rejected due to rate limiting. Details:TPM limit reached.","data":"x"}',
      429,
      "rate limiting",
      { "retry-after": "30" },
    ],
    [
      503,
      '{"code":50505,"message":"Model service overloaded. Please try again later.","data":"x"}',
      503,
      "overloaded",
    ],
    [504, "upstream timeout", 504, "timed out"],
    [500, "oops", 502, "HTTP 500"],
    [404, "404 page not found", 502, "404 page not found"],
    [200, "<html>not json</html>", 502, "not JSON"],
    [200, '{"images":"nope"}', 502, "no images list"],
    [200, '{"images":[{"url":42}]}', 502, "without a URL"],
    [200, '{"images":[]}', 400, "content filter"],
  ];
  for (const stream of [false, true]) {
    for (const [status, text, expected, fragment, headers] of cases) {
      await t.step(
        `${stream ? "streamed" : "plain"}: upstream ${status} ${text.slice(0, 30)}`,
        async () => {
          fake.queue.push({ status, body: text, headers });
          const res = await post(chat, body(stream));
          const got = await errorOf(res, stream);
          if (!stream) assertEquals(got.status, expected);
          assertStringIncludes(got.error.message, fragment);
          assertStringIncludes(got.error.message, "fake-trace-1");
          assertEquals(typeof got.error.type, "string");
          if (!stream && status === 429) assertEquals(got.headers.get("retry-after"), "30");
          if (!stream) assertEquals(got.headers.get("x-siliconcloud-trace-id"), "fake-trace-1");
        },
      );
    }
  }
  await t.step("a normal request still works afterwards", async () => {
    assertEquals((await post(chat, body())).status, 200);
  });
});

Deno.test("connection faults become 502 or 504 within the timeout", async (t) => {
  const faults: [RawFault | "refused", number][] = [
    ["refused", 502],
    ["reset-before-headers", 502],
    ["reset-mid-body", 502],
    ["stall-after-headers", 504],
    ["hang", 504],
    ["slow-drip", 504],
  ];
  for (const [fault, status] of faults) {
    await t.step(fault, async () => {
      let baseUrl = "http://127.0.0.1:9/v1";
      await using raw = fault === "refused" ? undefined : startRawUpstream(fault);
      if (raw) baseUrl = raw.baseUrl;
      await using server = startServer({
        SILICONFLOW_BASE_URL: baseUrl,
        UPSTREAM_TIMEOUT_MS: "300",
      });
      const started = Date.now();
      const res = await post(`${server.url}/v1/chat/completions`, body());
      const json = await res.json();
      assertEquals(res.status, status, JSON.stringify(json));
      assertEquals(Date.now() - started < 3000, true);
      const streamed = await post(`${server.url}/v1/chat/completions`, body(true));
      const got = await errorOf(streamed, true);
      assertEquals(typeof got.error.message, "string");
    });
  }
});

Deno.test("streaming: role chunk at once, JSON keep-alives, content, stop, usage, [DONE]", async () => {
  await using fake = startFakeUpstream();
  fake.delayMs = 260;
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, KEEPALIVE_MS: "50" });
  const res = await post(`${server.url}/v1/chat/completions`, {
    ...body(true),
    stream_options: { include_usage: true },
  });
  assertEquals(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
  const frames = await readSse(res);
  assertEquals(frames.at(-1), "[DONE]");
  const chunks = frames.slice(0, -1).map((f) => JSON.parse(f));
  assertEquals(chunks[0].choices[0].delta, { role: "assistant", content: "" });
  const keepAlives = chunks.filter((c) =>
    c.choices[0]?.delta?.content === "" && !c.choices[0].delta.role
  );
  assertEquals(keepAlives.length >= 3, true, `got ${keepAlives.length} keep-alives`);
  for (const c of chunks) {
    assertEquals(c.object, "chat.completion.chunk");
    assertEquals(c.id, chunks[0].id);
    assertEquals(c.created, chunks[0].created);
  }
  const content = chunks.find((c) => c.choices[0]?.delta?.content);
  assertMatch(content.choices[0].delta.content, /^!\[seed \d+\]\(http/);
  const stop = chunks.findIndex((c) => c.choices[0]?.finish_reason === "stop");
  assertEquals(chunks[stop].choices[0].delta, {});
  assertEquals(chunks[stop + 1].choices, []);
  assertEquals(chunks[stop + 1].usage, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
  assertEquals(chunks.slice(0, stop + 1).every((c) => c.usage === null), true);
});

Deno.test("a client that disconnects aborts the upstream call at once", async (t) => {
  await using fake = startFakeUpstream();
  fake.delayMs = 5000;
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, KEEPALIVE_MS: "20" });
  for (const stream of [true, false]) {
    await t.step(stream ? "streamed" : "not streamed", async () => {
      const before = fake.aborted();
      const controller = new AbortController();
      const res = post(`${server.url}/v1/chat/completions`, body(stream), {
        signal: controller.signal,
      });
      while (fake.inFlight() === 0) await new Promise((r) => setTimeout(r, 5));
      if (stream) {
        const reader = (await res).body!.getReader();
        await reader.read();
        controller.abort();
        await reader.cancel().catch(() => {});
      } else {
        controller.abort();
        await res.catch(() => {});
      }
      const deadline = Date.now() + 2000;
      while (fake.inFlight() > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
      }
      assertEquals(fake.inFlight(), 0);
      assertEquals(fake.aborted(), before + 1);
    });
  }
  // Let the server log the finished streams before the sanitizers look.
  await new Promise((r) => setTimeout(r, 50));
});

Deno.test("logs: one line per request with model, status and trace id, and never the key", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  await (await post(`${server.url}/v1/chat/completions`, body())).body?.cancel();
  fake.queue.push({ status: 401, body: `"Invalid token ${TEST_KEY}"` });
  const res = await post(`${server.url}/v1/chat/completions`, body());
  const text = await res.text();
  assertEquals(text.includes(TEST_KEY), false, "the key is not echoed back");
  await (await post(`${server.url}/v1/chat/completions`, body(true))).text();
  await until("three log lines", () => server.logs.length >= 3, 5_000);
  assertEquals(server.logs.length, 3);
  assertEquals(server.logs[0].model, "Qwen/Qwen-Image");
  assertEquals(server.logs[0].status, 200);
  assertMatch(String(server.logs[0].trace), /^demo-/);
  assertEquals(server.logs[1].status, 401);
  for (const line of server.lines) {
    assertEquals(line.includes(TEST_KEY), false);
    assertEquals(line.includes("base64"), false);
  }
});
