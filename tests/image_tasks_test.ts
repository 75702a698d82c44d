/**
 * Async image tasks (`/v1/images/generations/async`, `/v1/images/edits/async`, `Prefer:
 * respond-async`, `/v1/images/tasks`): in process for the API's shape, and with `main.ts` as it
 * runs for what outlives a process (two processes on one KV file, SIGKILL, SIGTERM).
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { PNG_DATA_URI, post, startFakeUpstream, startServer, TEST_KEY, until } from "./_helpers.ts";
import { spawnIn } from "./_videos.ts";

const auth = { authorization: `Bearer ${TEST_KEY}` };

/** Polls a task until it has ended. */
function untilEnded(url: string, headers: Record<string, string> = auth) {
  return until("the task ended", async () => {
    const task = await (await fetch(url, { headers })).json();
    return task.status === "completed" || task.status === "failed" ? task : undefined;
  }, 20_000);
}

Deno.test("image tasks: submit answers 202 at once; the task completes with the synchronous body, its links load", async () => {
  await using fake = startFakeUpstream();
  const dir = await Deno.makeTempDir();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, IMAGE_STORE: dir });
  try {
    fake.delayMs = 400;
    const body = {
      model: "Qwen/Qwen-Image",
      prompt: "a cat",
      n: 2,
      seed: 7,
      output_format: "webp",
    };
    const res = await post(`${server.url}/v1/images/generations/async`, body);
    assertEquals(res.status, 202);
    const task = await res.json();
    assertMatch(task.id, /^imgtask_/);
    assertEquals(task.object, "image.generation.task");
    assert(["queued", "in_progress"].includes(task.status), task.status);
    assertEquals(res.headers.get("location"), task.poll_url);
    assertEquals(task.poll_url, `${server.url}/v1/images/tasks/${task.id}`);
    assertEquals(res.headers.get("retry-after"), "2");
    assertEquals(res.headers.get("x-ignored-params"), "output_format");
    assertEquals(task.expires_at - task.created_at, 86_400);
    await until("in progress", async () => {
      const polled = await fetch(task.poll_url, { headers: auth });
      assertEquals(polled.headers.get("cache-control"), "no-store");
      return (await polled.json()).status === "in_progress";
    }, 5_000);
    const done = await untilEnded(task.poll_url);
    assertEquals(done.status, "completed", JSON.stringify(done));
    assertEquals(done.result.data.length, 2);
    assert(Number.isInteger(done.result.created));
    for (const { url } of done.result.data) {
      assert(url.startsWith(`${server.url}/images/`), url);
      const image = await fetch(url);
      assertEquals(image.headers.get("content-type"), "image/png");
      await image.body?.cancel();
    }
    // b64_json: kept as stored links, read back as base64 when collected.
    const b64 = await (await post(`${server.url}/v1/images/generations/async`, {
      prompt: "a dog",
      response_format: "b64_json",
    })).json();
    const collected = await untilEnded(b64.poll_url);
    assertMatch(collected.result.data[0].b64_json, /^iVBORw0KGgo/);
    // The list: newest first, with the videos' cursor fields.
    const list = await (await fetch(`${server.url}/v1/images/tasks?limit=1`, { headers: auth }))
      .json();
    assertEquals([list.object, list.data[0].id, list.has_more], ["list", b64.id, true]);
    const next = await (await fetch(
      `${server.url}/v1/images/tasks?after=${list.last_id}`,
      { headers: auth },
    )).json();
    assertEquals(next.data.map((t: { id: string }) => t.id), [task.id]);
    // Another key sees none of them.
    const other = { authorization: "Bearer sk-someone-else-000000000000" };
    assertEquals((await fetch(task.poll_url, { headers: other })).status, 404);
    const theirs = await (await fetch(`${server.url}/v1/images/tasks`, { headers: other })).json();
    assertEquals(theirs.data, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("image tasks: Prefer: respond-async on both synchronous routes; edits as multipart", async () => {
  await using fake = startFakeUpstream();
  const dir = await Deno.makeTempDir();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl, IMAGE_STORE: dir });
  try {
    const generated = await post(`${server.url}/v1/images/generations`, { prompt: "a cat" }, {
      headers: { prefer: "respond-async, wait=5" },
    });
    assertEquals(generated.status, 202);
    assertEquals(generated.headers.get("preference-applied"), "respond-async");
    assertEquals((await untilEnded((await generated.json()).poll_url)).status, "completed");
    const form = new FormData();
    form.append("model", "Qwen/Qwen-Image-Edit-2509");
    form.append("prompt", "make it blue");
    form.append("image", new Blob([Uint8Array.fromBase64(PNG_DATA_URI.split(",")[1])]), "a.png");
    const edited = await fetch(`${server.url}/v1/images/edits`, {
      method: "POST",
      headers: { ...auth, prefer: "respond-async" },
      body: form,
    });
    assertEquals(edited.status, 202);
    const task = await untilEnded((await edited.json()).poll_url);
    assertEquals(task.status, "completed");
    const asked = fake.received.at(-1)!.body as Record<string, unknown>;
    assertMatch(String(asked.image), /^data:image\/png;base64,/);
    // The same edit on the async route.
    const again = await fetch(`${server.url}/v1/images/edits/async`, {
      method: "POST",
      headers: auth,
      body: form,
    });
    assertEquals(again.status, 202);
    await untilEnded((await again.json()).poll_url);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("image tasks: a bad body gets the synchronous route's error at submit; an upstream failure is the task's error", async () => {
  await using fake = startFakeUpstream();
  const dir = await Deno.makeTempDir();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    IMAGE_STORE: dir,
    IMAGE_TASK_TTL_MS: "3000",
  });
  try {
    const shape = async (res: Response) => {
      const { error } = await res.json();
      return [res.status, error.type, error.code, error.param];
    };
    for (
      const bad of [
        {},
        { prompt: 7 },
        { prompt: "x", model: "no/such-model" },
        { prompt: "x", n: 9 },
        { prompt: "x", model: "Wan-AI/Wan2.2-T2V-A14B" },
        { prompt: "x".repeat(10_001) },
      ]
    ) {
      const sync = await shape(await post(`${server.url}/v1/images/generations`, bad));
      const submitted = await post(`${server.url}/v1/images/generations/async`, bad);
      assertEquals(await shape(submitted), sync, JSON.stringify(bad).slice(0, 80));
    }
    assertEquals(fake.received.length, 0, "nothing reached SiliconFlow");
    const wrongType = await fetch(`${server.url}/v1/images/edits/async`, {
      method: "POST",
      headers: { ...auth, "content-type": "text/plain" },
      body: "x",
    });
    assertEquals(wrongType.status, 415);
    await wrongType.body?.cancel();

    fake.queue.push({ status: 400, body: '{"code":20015,"message":"prompt is unsafe"}' });
    const task = await (await post(`${server.url}/v1/images/generations/async`, { prompt: "x" }))
      .json();
    const failed = await untilEnded(task.poll_url);
    assertEquals(failed.status, "failed");
    fake.queue.push({ status: 400, body: '{"code":20015,"message":"prompt is unsafe"}' });
    const sync = (await (await post(`${server.url}/v1/images/generations`, { prompt: "x" })).json())
      .error;
    const strip = (e: Record<string, unknown>) => ({
      ...e,
      message: String(e.message).replace(/ \(request id: .*\)$/, ""),
    });
    assertEquals(strip(failed.error), strip(sync));
    // Expiry (IMAGE_TASK_TTL_MS): a 404 once it is past.
    await until("expired", async () => {
      const res = await fetch(task.poll_url, { headers: auth });
      await res.body?.cancel();
      return res.status === 404;
    }, 10_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("image tasks: without an image store, the async routes say they need one", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({ SILICONFLOW_BASE_URL: fake.baseUrl });
  const res = await post(`${server.url}/v1/images/generations/async`, { prompt: "a cat" });
  assertEquals(res.status, 501);
  const { error } = await res.json();
  assertEquals(error.code, "image_store_required");
  assertMatch(error.message, /IMAGE_STORE/);
});

const ADMIN = "admin-secret-tasks-0123456789";
const OWNER = "sk-owner-tasks-11111111111111111";

function processEnv(fake: { baseUrl: string }, dir: string) {
  return {
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: OWNER,
    ADMIN_API_KEY: ADMIN,
    KV_PATH: `${dir}/kv.sqlite3`,
    IMAGE_STORE: `${dir}/images`,
    // A heartbeat of 3 s, scans every 2 s.
    VIDEO_POLL_MS: "1000",
    SHUTDOWN_GRACE_MS: "10000",
  };
}

async function newKey(url: string) {
  const res = await fetch(`${url}/admin/v1/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "tasks", images_per_day: 10 }),
  });
  assertEquals(res.status, 201);
  return (await res.json()).key as string;
}

async function remaining(url: string, key: string): Promise<number> {
  const res = await fetch(`${url}/v1/usage`, { headers: { authorization: `Bearer ${key}` } });
  return (await res.json()).remaining.today;
}

Deno.test("image tasks with main.ts: any process answers; a SIGKILL fails the task and gives its quota back; SIGTERM lets it finish", async () => {
  await using fake = startFakeUpstream();
  const dir = await Deno.makeTempDir();
  const first = await spawnIn(dir, processEnv(fake, dir));
  const second = await spawnIn(dir, processEnv(fake, dir));
  try {
    const key = await newKey(first.url);
    const headers = { authorization: `Bearer ${key}` };
    // Submitted on one process, collected on the other.
    const made = await (await post(`${first.url}/v1/images/generations/async`, {
      prompt: "shared",
    }, { key })).json();
    const done = await untilEnded(`${second.url}/v1/images/tasks/${made.id}`, headers);
    assertEquals(done.status, "completed");
    assertEquals(await remaining(second.url, key), 9, "counted like the synchronous route");

    // SIGTERM: a running task finishes within the grace, and the next process shows it.
    fake.delayMs = 1_500;
    const graceful = await (await post(`${first.url}/v1/images/generations/async`, {
      prompt: "graceful",
    }, { key })).json();
    await until("at SiliconFlow", () => fake.inFlight() === 1, 10_000);
    await first.stop("SIGTERM");
    const finished = await untilEnded(`${second.url}/v1/images/tasks/${graceful.id}`, headers);
    assertEquals(finished.status, "completed", JSON.stringify(finished));

    // SIGKILL: the task fails once the dead process's heartbeat lapsed, its quota given back.
    fake.delayMs = 60_000;
    const third = await spawnIn(dir, processEnv(fake, dir));
    try {
      const doomed = await (await post(`${third.url}/v1/images/generations/async`, {
        model: "Qwen/Qwen-Image",
        prompt: "doomed",
        n: 2,
      }, { key })).json();
      await until("at SiliconFlow", () => fake.inFlight() === 2, 10_000);
      assertEquals(await remaining(second.url, key), 6);
      await third.stop("SIGKILL");
      const lost = await untilEnded(`${second.url}/v1/images/tasks/${doomed.id}`, headers);
      assertEquals([lost.status, lost.error.code], ["failed", "task_interrupted"]);
      await until(
        "the quota whole again",
        async () => (await remaining(second.url, key)) === 8,
        15_000,
      );
    } finally {
      await third.stop("SIGKILL").catch(() => {});
    }
  } finally {
    fake.delayMs = 0;
    await first.stop("SIGTERM").catch(() => {});
    await second.stop("SIGTERM");
    await Deno.remove(dir, { recursive: true });
  }
});
