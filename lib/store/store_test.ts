/** One contract for both image stores: a local folder, and S3 on a loopback s3rver. */
import { assert, assertEquals, assertMatch, assertNotEquals } from "@std/assert";
import S3rver from "s3rver";
import { MEDIA_NAME, type MediaStore, type StoredImage } from "./media_store.ts";
import { LocalMediaStore } from "./local.ts";
import { S3MediaStore } from "./s3.ts";

const PNG = new Uint8Array([
  0x89,
  0x50,
  0x4e,
  0x47,
  0x0d,
  0x0a,
  0x1a,
  0x0a,
  1,
  2,
  3,
  4,
  5,
  6,
  7,
  8,
]);
const quiet = () => {};

async function bytesOf(body: StoredImage["body"]): Promise<number[]> {
  return [...new Uint8Array(await new Response(body).arrayBuffer())];
}

async function contract(t: Deno.TestContext, store: MediaStore) {
  await t.step(`${store.kind}: put, get, a range, list, delete`, async () => {
    const name = await store.put(PNG, "image/png");
    assertMatch(name, MEDIA_NAME);
    assertMatch(name, /\.png$/);
    assertNotEquals(await store.put(PNG, "image/png"), name, "every image gets a new id");
    const whole = await store.get(name);
    assertEquals([whole!.size, whole!.contentType], [PNG.length, "image/png"]);
    assertEquals(await bytesOf(whole!.body), [...PNG]);
    const part = await store.get(name, { start: 2, end: 5 });
    assertEquals(await bytesOf(part!.body), [...PNG.subarray(2, 6)]);
    assertEquals(part!.size, PNG.length);
    const jpeg = await store.put(new Uint8Array([0xff, 0xd8, 0xff, 0]), "image/jpeg");
    assertEquals((await store.get(jpeg))!.contentType, "image/jpeg");
    const listed = [];
    for await (const entry of store.list()) listed.push(entry);
    const entry = listed.find((e) => e.name === name);
    assertEquals(entry?.size, PNG.length);
    assert(Math.abs(entry!.modified - Date.now()) < 60_000);
    await store.delete(name);
    assertEquals(await store.get(name), undefined);
    await store.delete(name); // twice is no error
  });
  await t.step(`${store.kind}: names it never made are unknown, and never paths`, async () => {
    assertEquals(await store.get("AAAAAAAAAAAAAAAAAAAAAA.png"), undefined);
    assertEquals(await store.get("../../etc/passwd"), undefined);
    assertEquals(await store.get("x.png"), undefined);
  });
}

Deno.test("image store contract: local folder", async (t) => {
  const root = await Deno.makeTempDir();
  const store = new LocalMediaStore({ root, ttlMs: 86_400_000, maxBytes: 1 << 30, logger: quiet });
  try {
    await contract(t, store);
    const leftovers = [];
    for await (const entry of Deno.readDir(root)) leftovers.push(entry.name);
    assert(leftovers.every((n) => !n.endsWith(".partial")), "no partial files left");
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("local store putStream: written as it streams in; a broken stream keeps nothing", async () => {
  const root = await Deno.makeTempDir();
  const store = new LocalMediaStore({ root, ttlMs: 86_400_000, maxBytes: 1 << 30, logger: quiet });
  const chunks = [PNG.subarray(0, 5), PNG.subarray(5, 9), PNG.subarray(9)];
  try {
    const name = await store.putStream(ReadableStream.from(chunks), "image/png");
    const stored = await store.get(name);
    assertEquals([stored!.size, await bytesOf(stored!.body)], [PNG.length, [...PNG]]);
    const broken = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(PNG.subarray(0, 8));
        controller.error(new Error("the download broke off"));
      },
    });
    let failed = "";
    await store.putStream(broken, "image/png").catch((err) => (failed = err.message));
    assertEquals(failed, "the download broke off");
    const stop = new AbortController();
    const stalled = new ReadableStream<Uint8Array>({
      start: (controller) => controller.enqueue(PNG.subarray(0, 8)),
    });
    const abandoned = store.putStream(stalled, "image/png", stop.signal).catch(() => "gave up");
    setTimeout(() => stop.abort(), 20);
    assertEquals(await abandoned, "gave up");
    const left = [];
    for await (const entry of Deno.readDir(root)) left.push(entry.name);
    assertEquals(left, [name], "nothing but the whole image");
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("image store contract: S3-compatible (s3rver on loopback)", async (t) => {
  const directory = await Deno.makeTempDir();
  const server = new S3rver({
    port: 0,
    address: "127.0.0.1",
    silent: true,
    directory,
    configureBuckets: [{ name: "images" }],
  });
  const { port } = await server.run();
  const store = new S3MediaStore({
    bucket: "images",
    prefix: "generated/",
    endpoint: `http://127.0.0.1:${port}`,
    region: "us-east-1",
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
    forcePathStyle: true,
  });
  try {
    await contract(t, store);
  } finally {
    await server.close();
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("local store retention: past IMAGE_TTL_DAYS, then oldest first past the size cap", async () => {
  const root = await Deno.makeTempDir();
  let now = Date.now();
  const store = new LocalMediaStore({
    root,
    ttlMs: 86_400_000,
    maxBytes: 3 * PNG.length,
    logger: quiet,
    now: () => now,
    sweepEveryMs: 3_600_000,
  });
  try {
    await store.sweep();
    const names = [];
    for (let i = 0; i < 3; i++) {
      const name = await store.put(PNG, "image/png");
      // Ages of 3, 2 and 1 hours.
      const at = new Date(now - (3 - i) * 3_600_000);
      await Deno.utime(`${root}/${name}`, at, at);
      names.push(name);
    }
    // A fourth crosses the cap: the oldest goes.
    names.push(await store.put(PNG, "image/png"));
    await store.sweep();
    assertEquals(await store.get(names[0]), undefined);
    for (const name of names.slice(1)) assert(await store.get(name), name);
    // Two days later everything is past its time.
    now += 2 * 86_400_000;
    await store.sweep();
    for (const name of names) assertEquals(await store.get(name), undefined);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a local store whose folder is gone reports it and keeps the process alive", async () => {
  const root = await Deno.makeTempDir();
  const lines: string[] = [];
  const store = new LocalMediaStore({
    root,
    ttlMs: 86_400_000,
    maxBytes: 1,
    logger: (r) => lines.push(r.msg),
    sweepEveryMs: 3_600_000,
  });
  try {
    await store.sweep();
    await Deno.remove(root, { recursive: true });
    await Deno.writeTextFile(root, "not a folder");
    await store.sweep(); // resolves, and says why
    assert(lines.includes("image store sweep failed"), lines.join("\n"));
    let failed = false;
    await store.put(PNG, "image/png").catch(() => (failed = true));
    assert(failed, "writes fail");
  } finally {
    store.close();
    await Deno.remove(root);
  }
});

Deno.test("local store: a file is written as {name}.partial, renamed once whole; at start-up a crashed writer's partial goes, a live writer's stays", async () => {
  const root = await Deno.makeTempDir();
  // A writer that died (no lock), and one still writing (its file locked by an open handle).
  await Deno.writeFile(`${root}/AAAAAAAAAAAAAAAAAAAAAA.png.partial`, new Uint8Array(10));
  const live = await Deno.open(`${root}/BBBBBBBBBBBBBBBBBBBBBB.png.partial`, {
    write: true,
    create: true,
  });
  await live.lock(true);
  const store = new LocalMediaStore({ root, ttlMs: 86_400_000, maxBytes: 1 << 30, logger: quiet });
  try {
    // The constructor starts the same clean-up; either run removes the dead writer's file.
    await store.removeStalePartials();
    const names = () => [...Deno.readDirSync(root)].map((e) => e.name).sort();
    assertEquals(names(), ["BBBBBBBBBBBBBBBBBBBBBB.png.partial"]);
    // While a stream is being written, only its partial file exists.
    let resume!: () => void;
    const gate = new Promise<void>((r) => (resume = r));
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        controller.enqueue(PNG);
        await gate;
        controller.close();
      },
    });
    const writing = store.putStream(body, "image/png");
    while (names().length < 2) await new Promise((r) => setTimeout(r, 10));
    assert(names().every((n) => n.endsWith(".partial")), "nothing under a served name yet");
    resume();
    const name = await writing;
    assertEquals(names().filter((n) => !n.startsWith("BBBB")), [name]);
    assertEquals(await bytesOf((await store.get(name))!.body), [...PNG]);
  } finally {
    live.close();
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});
