/**
 * The local-folder image store (`IMAGE_STORE=./data/images`, the default where the disk can be
 * written): files written under a new unguessable name (as they stream in, for large ones) that is
 * served only once the file is whole and synced to disk, served as streams, and kept within `IMAGE_TTL_DAYS` and `IMAGE_STORE_MAX_BYTES`, oldest first:
 * at start-up, after a write that crosses the cap, and by a sweep every minute.
 * @module
 */
import { WHOLE_READ_BYTES } from "../server/body.ts";
import { errorText, type Logger } from "../server/logger.ts";
import { soon } from "../time_limit.ts";
import {
  type ByteRange,
  MEDIA_NAME,
  MEDIA_TYPES,
  type MediaStore,
  newImageName,
  type StoredEntry,
  type StoredImage,
} from "./media_store.ts";

/** Options of {@link LocalMediaStore}. */
export interface LocalStoreOptions {
  /** The folder. */
  root: string;
  /** Images older than this are deleted. */
  ttlMs: number;
  /** The most bytes kept; past it the oldest go. */
  maxBytes: number;
  /** Where sweeps are reported. */
  logger: Logger;
  /** The clock. */
  now?: () => number;
  /** How often the sweep runs; default a minute. */
  sweepEveryMs?: number;
}

/** Images in a local folder. */
export class LocalMediaStore implements MediaStore {
  readonly kind = "local";
  #options: LocalStoreOptions;
  #now: () => number;
  #bytes = 0;
  #sweeping?: Promise<void>;
  #timer?: ReturnType<typeof setInterval>;
  #closed = false;
  #cleaning: Promise<number> | undefined;

  /** Creates the folder if needed and starts the sweep (the first one at once). */
  constructor(options: LocalStoreOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    Deno.mkdirSync(options.root, { recursive: true });
    this.removeStalePartials().catch(() => {});
    this.sweep();
    // The timer is set at the second sweep, not during start-up (see soon()).
    const every = options.sweepEveryMs ?? 60_000;
    soon(every, () => {
      if (this.#closed) return;
      this.sweep();
      this.#timer = setInterval(() => this.sweep(), every);
      Deno.unrefTimer(this.#timer);
    });
  }

  #path(name: string): string {
    return `${this.#options.root}/${name}`;
  }

  /** Writes the bytes to a new file. */
  put(bytes: Uint8Array<ArrayBuffer>, contentType: string, signal?: AbortSignal): Promise<string> {
    return this.#write(bytes, contentType, signal);
  }

  /** The same, written chunk by chunk as the download streams in. */
  putStream(
    body: ReadableStream<Uint8Array>,
    contentType: string,
    signal?: AbortSignal,
  ): Promise<string> {
    return this.#write(body, contentType, signal);
  }

  async #write(
    data: Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array>,
    contentType: string,
    signal?: AbortSignal,
  ): Promise<string> {
    // Written under a name the store never serves ({name}.partial), locked while it is written,
    // synced, then renamed: the name is handed out only once the whole file is on disk, and a
    // crash mid-write leaves a partial file that the next start-up removes (its lock is gone).
    const name = newImageName(contentType);
    const partial = this.#path(`${name}${PARTIAL}`);
    const file = await Deno.open(partial, { write: true, createNew: true });
    let size = 0;
    try {
      await file.lock(true);
      if (data instanceof Uint8Array) {
        signal?.throwIfAborted();
        await writeAll(file, data);
        size = data.byteLength;
      } else {
        await data.pipeTo(
          new WritableStream({
            async write(chunk) {
              await writeAll(file, chunk);
              size += chunk.byteLength;
            },
          }),
          { signal },
        );
      }
      await file.syncData();
      await Deno.rename(partial, this.#path(name));
    } catch (err) {
      await Deno.remove(partial).catch(() => {}); // only the file this call created
      throw err;
    } finally {
      file.close();
    }
    await this.#syncFolder();
    this.#bytes += size;
    if (this.#bytes > this.#options.maxBytes) this.sweep();
    return name;
  }

  /** Makes a rename durable (the folder's entry), where the platform lets a folder be synced. */
  async #syncFolder(): Promise<void> {
    try {
      const folder = await Deno.open(this.#options.root, { read: true });
      try {
        await folder.sync();
      } finally {
        folder.close();
      }
    } catch {
      // Windows cannot open a folder as a file; the rename is then as durable as the OS makes it.
    }
  }

  /**
   * Removes partial files whose writer is gone (a crash mid-write): their lock is free. A call
   * while a clean-up runs waits for that one (two at once would each see the other's lock).
   */
  removeStalePartials(): Promise<number> {
    return this.#cleaning ??= this.#removeStalePartials().finally(() => this.#cleaning = undefined);
  }

  async #removeStalePartials(): Promise<number> {
    let removed = 0;
    for await (const entry of Deno.readDir(this.#options.root)) {
      if (!entry.isFile || !entry.name.endsWith(PARTIAL)) continue;
      const path = this.#path(entry.name);
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { read: true, write: true });
      } catch {
        continue; // finished or removed meanwhile
      }
      try {
        // A writer alive (this process or another sharing the folder) holds the lock.
        if (await file.tryLock(true)) {
          await Deno.remove(path);
          removed++;
        }
      } catch {
        // Removed meanwhile.
      } finally {
        file.close();
      }
    }
    if (removed) {
      this.#options.logger({
        level: "info",
        msg: "image store: removed files left half-written by a crash",
        removed,
      });
    }
    return removed;
  }

  async get(name: string, range?: ByteRange): Promise<StoredImage | undefined> {
    const match = MEDIA_NAME.exec(name);
    if (!match) return undefined;
    const contentType = MEDIA_TYPES[match[2]];
    // A small image whole is read in one call, with no stream: over twice as fast as opening
    // and streaming it (bench:micro "serve"). A file deleted meanwhile is one the store does not hold.
    let file: Deno.FsFile;
    let size: number;
    try {
      size = (await Deno.stat(this.#path(name))).size;
      if (!range && size <= WHOLE_READ_BYTES) {
        const bytes = await Deno.readFile(this.#path(name));
        return { body: bytes, size: bytes.byteLength, contentType };
      }
      file = await Deno.open(this.#path(name), { read: true });
    } catch {
      return undefined;
    }
    let body: ReadableStream<Uint8Array> = file.readable;
    if (range) {
      await file.seek(range.start, Deno.SeekMode.Start);
      body = file.readable.pipeThrough(limitBytes(range.end - range.start + 1));
    }
    return { body, size, contentType };
  }

  async delete(name: string): Promise<void> {
    if (!MEDIA_NAME.test(name)) return;
    await Deno.remove(this.#path(name)).catch(() => {});
  }

  async *list(): AsyncIterable<StoredEntry> {
    for await (const entry of Deno.readDir(this.#options.root)) {
      if (!entry.isFile || !MEDIA_NAME.test(entry.name)) continue;
      try {
        const stat = await Deno.stat(this.#path(entry.name));
        yield { name: entry.name, size: stat.size, modified: stat.mtime?.getTime() ?? 0 };
      } catch {
        // Deleted meanwhile.
      }
    }
  }

  /**
   * Deletes what is past its time, then the oldest until the folder fits its cap. Never rejects:
   * a folder that cannot be read (gone, a broken disk) is reported and tried again next time.
   */
  sweep(): Promise<void> {
    this.#sweeping ??= this.#sweep().catch((err) => {
      this.#options.logger({
        level: "warn",
        msg: "image store sweep failed",
        error: errorText(err),
      });
    }).finally(() => (this.#sweeping = undefined));
    return this.#sweeping;
  }

  async #sweep(): Promise<void> {
    const cutoff = this.#now() - this.#options.ttlMs;
    const kept: StoredEntry[] = [];
    let expired = 0;
    for await (const entry of this.list()) {
      if (entry.modified < cutoff) {
        await this.delete(entry.name);
        expired++;
      } else kept.push(entry);
    }
    kept.sort((a, b) => a.modified - b.modified);
    let total = kept.reduce((n, e) => n + e.size, 0);
    let evicted = 0;
    for (const entry of kept) {
      if (total <= this.#options.maxBytes) break;
      await this.delete(entry.name);
      total -= entry.size;
      evicted++;
    }
    this.#bytes = total;
    if (expired || evicted) {
      this.#options.logger({
        level: "info",
        msg: "image store swept",
        expired,
        evicted,
        bytes: total,
      });
    }
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }
}

/** What a file being written is called until it is whole. */
const PARTIAL = ".partial";

/** Writes all of `bytes` (a file's `write` may write fewer). */
async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.byteLength;) at += await file.write(bytes.subarray(at));
}

/** Passes at most `count` bytes, then ends the stream. */
function limitBytes(count: number): TransformStream<Uint8Array, Uint8Array> {
  let left = count;
  return new TransformStream({
    transform(chunk, controller) {
      if (left <= 0) return controller.terminate();
      const part = chunk.byteLength > left ? chunk.subarray(0, left) : chunk;
      left -= part.byteLength;
      controller.enqueue(part);
      if (left <= 0) controller.terminate();
    },
  });
}
