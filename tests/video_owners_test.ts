/**
 * Who sees which video jobs, and what waiting for one costs: one key's 150 jobs listed in pages
 * of 20 and 100, both orders, and by the SDK's auto-pagination (Deno KV reads ten keys at once);
 * anonymous callers read by id but list and delete nothing of anyone's; streamed video chats wait
 * without taking the image slots.
 */
import { assert, assertEquals } from "@std/assert";
import OpenAI from "openai";
import { post, readSse, startFakeUpstream, startServer, TEST_KEY } from "./_helpers.ts";
import { until } from "./_videos.ts";

const opts = {};

Deno.test(
  "GET /v1/videos: 150 jobs of one key in pages of 20 and 100, both orders, and through the SDK's auto-pagination",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    fake.videoMs = 86_400_000; // they stay queued: only the listing matters
    await using server = startServer({
      SILICONFLOW_BASE_URL: fake.baseUrl,
      KV_PATH: ":memory:",
      VIDEO_POLL_MS: "60000",
    });
    const ids: string[] = [];
    for (let i = 0; i < 150; i++) {
      const res = await post(`${server.url}/v1/videos`, { prompt: `video ${i}` });
      assertEquals(res.status, 200);
      ids.push((await res.json()).id);
    }
    const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${server.url}/v1` });
    const page = async (query: string) => {
      const res = await fetch(`${server.url}/v1/videos?${query}`, {
        headers: { authorization: `Bearer ${TEST_KEY}` },
      });
      const body = await res.json();
      assertEquals(res.status, 200, JSON.stringify(body));
      return body as {
        data: { id: string }[];
        has_more: boolean;
        first_id: string;
        last_id: string;
      };
    };
    for (
      const [limit, order] of [[20, "desc"], [100, "desc"], [20, "asc"], [100, "asc"]] as const
    ) {
      const seen: string[] = [];
      let after = "";
      for (;;) {
        const body = await page(`limit=${limit}&order=${order}${after ? `&after=${after}` : ""}`);
        assert(body.data.length <= limit);
        seen.push(...body.data.map((v) => v.id));
        assertEquals([body.first_id, body.last_id], [body.data[0].id, body.data.at(-1)!.id]);
        if (!body.has_more) break;
        assertEquals(body.data.length, limit);
        after = body.last_id;
      }
      assertEquals(seen, order === "asc" ? ids : [...ids].reverse(), `${limit} ${order}`);
    }
    const all: string[] = [];
    for await (const video of client.videos.list({ limit: 20 })) all.push(video.id);
    assertEquals(all.length, 150);
    assertEquals(new Set(all).size, 150);
    assertEquals(new Set(all), new Set(ids));
    const other = new OpenAI({
      apiKey: "sk-other-2222222222222222222222",
      baseURL: client.baseURL,
    });
    assertEquals((await other.videos.list({ limit: 100 })).data, []);
  },
);

Deno.test(
  "anonymous mode: a keyless caller reads a job by its id, but lists and deletes nothing; a token of its own owns its jobs",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    await using server = startServer({
      SILICONFLOW_BASE_URL: fake.baseUrl,
      SILICONFLOW_API_KEY: "sk-owner-3333333333333333333333",
      ALLOW_ANONYMOUS: "true",
      KV_PATH: ":memory:",
      VIDEO_POLL_MS: "100",
    });
    const call = (path: string, init: RequestInit & { token?: string } = {}) =>
      fetch(`${server.url}${path}`, {
        ...init,
        headers: {
          "content-type": "application/json",
          ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
        },
      });
    const made = await call("/v1/videos", { method: "POST", body: '{"prompt":"anyone"}' });
    const job = await made.json();
    assertEquals(made.status, 200, JSON.stringify(job));
    // Another keyless caller: the id reads; the list is empty; a delete is a 404.
    const read = await call(`/v1/videos/${job.id}`);
    assertEquals([read.status, (await read.json()).prompt], [200, "anyone"]);
    const list = await (await call("/v1/videos")).json();
    assertEquals(list.data, []);
    const deleted = await call(`/v1/videos/${job.id}`, { method: "DELETE" });
    assertEquals(deleted.status, 404);
    await deleted.body?.cancel();
    // A caller with a token of its own owns its jobs by it.
    const mine = await (await call("/v1/videos", {
      method: "POST",
      body: '{"prompt":"mine"}',
      token: "my-own-token-123",
    })).json();
    const myList = await (await call("/v1/videos", { token: "my-own-token-123" })).json();
    assertEquals(myList.data.map((v: { id: string }) => v.id), [mine.id]);
    const notYours = await call(`/v1/videos/${mine.id}`);
    assertEquals(notYours.status, 404);
    await notYours.body?.cancel();
    const gone = await call(`/v1/videos/${mine.id}`, {
      method: "DELETE",
      token: "my-own-token-123",
    });
    assertEquals(gone.status, 200);
    await gone.body?.cancel();
  },
);

Deno.test(
  "MAX_CONCURRENCY=2: two streamed video chats wait without taking the image slots; an image request still gets its image",
  opts,
  async () => {
    await using fake = startFakeUpstream();
    fake.videoMs = 3_000;
    await using server = startServer({
      SILICONFLOW_BASE_URL: fake.baseUrl,
      KV_PATH: ":memory:",
      VIDEO_POLL_MS: "100",
      MAX_CONCURRENCY: "2",
      KEEPALIVE_MS: "200",
    });
    const chats = [1, 2].map((i) =>
      post(`${server.url}/v1/chat/completions`, {
        model: "sora-2",
        stream: true,
        messages: [{ role: "user", content: `video ${i}` }],
      })
    );
    const started = await Promise.all(chats);
    for (const res of started) assertEquals(res.status, 200);
    await until(
      "both chats wait for their videos",
      () => fake.received.filter((r) => r.path.endsWith("/video/submit")).length === 2,
      10_000,
    );
    const image = await post(`${server.url}/v1/images/generations`, {
      model: "Qwen/Qwen-Image",
      prompt: "still served",
    });
    const body = await image.json();
    assertEquals(image.status, 200, JSON.stringify(body));
    assert(body.data[0].url);
    for (const res of started) {
      const frames = (await readSse(res)).filter((f) => f !== "[DONE]").map((f) => JSON.parse(f));
      const content = frames.map((f) => f.choices?.[0]?.delta?.content ?? "").join("");
      assert(/\]\(http[^)]+\.mp4\)/.test(content), content);
    }
  },
);
