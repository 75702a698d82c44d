/**
 * Access keys with quotas on Deno KV: the admin API, quotas enforced atomically (also across two
 * processes on one SQLite file), usage, roll-over by an injected clock, revocation in flight, and
 * a KV that cannot be reached.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { post, startFakeUpstream, startServer, type TestServer } from "./_helpers.ts";
import { spawnMain } from "./_spawn.ts";

const ADMIN = "admin-secret-0123456789";
const OWNER = "sk-owner-1111111111111111111111";
const chat = (n = 1, model = "Qwen/Qwen-Image") => ({
  model,
  n,
  messages: [{ role: "user", content: "a cat" }],
});

function adminCall(url: string, method: string, path: string, body?: unknown, key = ADMIN) {
  return fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function newKey(server: { url: string }, fields: Record<string, unknown>) {
  const res = await adminCall(server.url, "POST", "/admin/v1/keys", fields);
  const body = await res.json();
  assertEquals(res.status, 201, JSON.stringify(body));
  return body as { id: string; key: string };
}

async function use(server: TestServer | { url: string }, key: string, body = chat()) {
  const res = await post(`${server.url}/v1/chat/completions`, body, { key });
  const json = await res.json();
  return { status: res.status, body: json, headers: res.headers };
}

Deno.test("admin API: keys made, listed, limited, restricted, disabled and revoked", async (t) => {
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: OWNER,
    PROXY_API_KEYS: "pk-env-key-123456",
    ADMIN_API_KEY: ADMIN,
    KV_PATH: ":memory:",
  });
  let alice = { id: "", key: "" };
  await t.step("bad input and a wrong admin key are OpenAI-style errors", async () => {
    for (
      const [body, param] of [
        [{}, "name"],
        [{ name: "x", images_per_day: -1 }, "images_per_day"],
        [{ name: "x", expires_at: "tomorrow" }, "expires_at"],
        [{ name: "x", models: ["No/Such"] }, "models[0]"],
        [{ name: "x", colour: "red" }, "body"],
      ] as const
    ) {
      const res = await adminCall(server.url, "POST", "/admin/v1/keys", body);
      const json = await res.json();
      assertEquals([res.status, json.error.param], [400, param], JSON.stringify(body));
    }
    const wrong = await adminCall(server.url, "GET", "/admin/v1/keys", undefined, "nope");
    assertEquals(wrong.status, 401);
    await wrong.body?.cancel();
  });
  await t.step("a key is shown once, stored as a hash, and works like any access key", async () => {
    alice = await newKey(server, { name: "alice", images_per_day: 3 });
    assertMatch(alice.key, /^sfk_/);
    const ok = await use(server, alice.key);
    assertEquals(ok.status, 200, JSON.stringify(ok.body));
    assertEquals(fake.received.at(-1)!.authorization, `Bearer ${OWNER}`);
    const list = await (await adminCall(server.url, "GET", "/admin/v1/keys")).json();
    const shown = list.data.find((k: { id: string }) => k.id === alice.id);
    assertEquals([shown.name, shown.images_per_day, shown.usage.today], ["alice", 3, 1]);
    assert(!JSON.stringify(list).includes(alice.key) && !("hash" in shown));
    assert(shown.last_used_at);
  });
  await t.step(
    "past the daily limit: 429 quota_exceeded with Retry-After; failures give back",
    async () => {
      fake.queue.push({ status: 500, body: "boom" });
      assertEquals((await use(server, alice.key)).status, 502);
      assertEquals((await use(server, alice.key, chat(2))).status, 200);
      const over = await use(server, alice.key);
      assertEquals([over.status, over.body.error.code], [429, "quota_exceeded"]);
      assertStringIncludes(over.body.error.message, "daily limit of 3");
      assert(Number(over.headers.get("retry-after")) > 0);
      const usage = await (await fetch(`${server.url}/v1/usage`, {
        headers: { authorization: `Bearer ${alice.key}` },
      })).json();
      assertEquals(usage.remaining, {
        today: 0,
        this_month: null,
        videos_today: null,
        videos_this_month: null,
      });
      assertEquals(usage.data.reduce((n: number, r: { images: number }) => n + r.images, 0), 3);
    },
  );
  await t.step("PATCH takes effect on the next request: a higher limit, then models", async () => {
    const raised = await adminCall(server.url, "PATCH", `/admin/v1/keys/${alice.id}`, {
      images_per_day: 10,
    });
    assertEquals(raised.status, 200);
    await raised.body?.cancel();
    assertEquals((await use(server, alice.key)).status, 200);
    await (await adminCall(server.url, "PATCH", `/admin/v1/keys/${alice.id}`, {
      models: ["dall-e-2"],
    })).body?.cancel();
    const denied = await use(server, alice.key);
    assertEquals([denied.status, denied.body.error.code], [403, "model_not_allowed"]);
    assertEquals((await use(server, alice.key, chat(1, "dall-e-2"))).status, 200);
  });
  await t.step("disabled, then revoked: 401; an unknown id is a 404", async () => {
    await (await adminCall(server.url, "PATCH", `/admin/v1/keys/${alice.id}`, {
      disabled: true,
    })).body?.cancel();
    assertEquals((await use(server, alice.key, chat(1, "dall-e-2"))).status, 401);
    const gone = await adminCall(server.url, "DELETE", `/admin/v1/keys/${alice.id}`);
    assertEquals(gone.status, 200);
    await gone.body?.cancel();
    assertEquals((await use(server, alice.key)).status, 401);
    for (const method of ["PATCH", "DELETE"]) {
      const res = await adminCall(server.url, method, `/admin/v1/keys/${alice.id}`, { name: "x" });
      assertEquals(res.status, 404, method);
      await res.body?.cancel();
    }
  });
  await t.step("usage per key, model and day, as JSON and CSV; env keys still work", async () => {
    const json = await (await adminCall(server.url, "GET", "/admin/v1/usage")).json();
    const qwen = json.data.find((r: { model: string }) => r.model === "Qwen/Qwen-Image");
    assertEquals([qwen.key_name, qwen.requested, qwen.made, qwen.failures], [null, 5, 4, 1]);
    const csv = await (await adminCall(server.url, "GET", "/admin/v1/usage?format=csv")).text();
    assertMatch(csv, /^date,key_id,key_name,model,unit,requested,made,failures\n/);
    const bad = await adminCall(server.url, "GET", "/admin/v1/usage?from=yesterday");
    assertEquals(bad.status, 400);
    await bad.body?.cancel();
    assertEquals((await use(server, "pk-env-key-123456")).status, 200);
  });
});

Deno.test("without ADMIN_API_KEY the admin routes do not exist", async () => {
  await using server = startServer({});
  const res = await adminCall(server.url, "GET", "/admin/v1/keys");
  assertEquals(res.status, 404);
  await res.body?.cancel();
});

Deno.test("quotas roll over at UTC midnight and at the month's start (injected clock)", async () => {
  let now = Date.UTC(2026, 0, 31, 23, 0);
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: OWNER,
    ADMIN_API_KEY: ADMIN,
    KV_PATH: ":memory:",
  }, { now: () => now });
  const bob = await newKey(server, { name: "bob", images_per_day: 1, images_per_month: 2 });
  assertEquals((await use(server, bob.key)).status, 200);
  const tooMany = await use(server, bob.key);
  assertEquals(tooMany.status, 429);
  assertStringIncludes(tooMany.body.error.message, "2026-02-01T00:00:00.000Z");
  now = Date.UTC(2026, 1, 1, 9, 0); // a new day and a new month
  assertEquals((await use(server, bob.key)).status, 200);
  now = Date.UTC(2026, 1, 2, 9, 0);
  assertEquals((await use(server, bob.key)).status, 200);
  now = Date.UTC(2026, 1, 3, 9, 0); // a new day, but the month's two are spent
  const month = await use(server, bob.key);
  assertEquals([month.status, month.body.error.code], [429, "quota_exceeded"]);
  assertStringIncludes(month.body.error.message, "monthly limit of 2");
});

Deno.test("a key revoked while its request is in flight: that one finishes, the next is refused", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: OWNER,
    ADMIN_API_KEY: ADMIN,
    KV_PATH: ":memory:",
  });
  const carol = await newKey(server, { name: "carol" });
  fake.delayMs = 300;
  const inFlight = use(server, carol.key);
  while (fake.inFlight() === 0) await new Promise((r) => setTimeout(r, 5));
  await (await adminCall(server.url, "DELETE", `/admin/v1/keys/${carol.id}`)).body?.cancel();
  assertEquals((await inFlight).status, 200);
  fake.delayMs = 0;
  assertEquals((await use(server, carol.key)).status, 401);
});

Deno.test("a KV that cannot be opened: managed keys fail closed with 503, env keys work", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: OWNER,
    PROXY_API_KEYS: "pk-env-key-123456",
    ADMIN_API_KEY: ADMIN,
    KV_PATH: "/nonexistent-folder/for/kv.sqlite3",
  });
  const managed = await use(server, "sfk_not-checkable-now");
  assertEquals([managed.status, managed.body.error.code], [503, "key_store_unavailable"]);
  assertEquals((await use(server, "pk-env-key-123456")).status, 200);
  const create = await adminCall(server.url, "POST", "/admin/v1/keys", { name: "x" });
  assertEquals(create.status, 503);
  await create.body?.cancel();
});

Deno.test("two processes on one SQLite KV never let a key overspend", async () => {
  const dir = await Deno.makeTempDir();
  await using fake = startFakeUpstream();
  const env = {
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: OWNER,
    ADMIN_API_KEY: ADMIN,
    KV_PATH: `${dir}/kv.sqlite3`,
    IMAGE_STORE: "none",
  };
  const permissions = [`--allow-read=${dir}`, `--allow-write=${dir}`];
  const a = await spawnMain([], env, { permissions });
  const b = await spawnMain([], env, { permissions });
  try {
    const dave = await newKey(a, { name: "dave", images_per_day: 6 });
    const statuses = await Promise.all(
      Array.from({ length: 24 }, (_, i) => use(i % 2 ? a : b, dave.key).then((r) => r.status)),
    );
    assertEquals(statuses.filter((s) => s === 200).length, 6, statuses.join(","));
    assertEquals(statuses.filter((s) => s === 429).length, 18, statuses.join(","));
    const generations = fake.received.filter((r) => r.path.endsWith("/images/generations"));
    assertEquals(generations.length, 6);
  } finally {
    await a.stop();
    await b.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a request retried on another owner key is counted once", async () => {
  await using fake = startFakeUpstream();
  await using server = startServer({
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: `${OWNER},sk-owner-2222222222222222222222`,
    ADMIN_API_KEY: ADMIN,
    KV_PATH: ":memory:",
  });
  const frank = await newKey(server, { name: "frank", images_per_day: 2 });
  fake.queue.push({ status: 429, body: '{"message":"IPM limit reached."}' });
  assertEquals((await use(server, frank.key)).status, 200);
  assertEquals(fake.received.length, 2, "tried on the second owner key");
  const usage = await (await adminCall(server.url, "GET", "/admin/v1/usage")).json();
  assertEquals([usage.data[0].requested, usage.data[0].made, usage.data[0].failures], [1, 1, 0]);
  const list = await (await adminCall(server.url, "GET", "/admin/v1/keys")).json();
  assertEquals(list.data[0].usage.today, 1);
});
