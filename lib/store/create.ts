/**
 * The image store a configuration asks for, or none: a local folder that cannot be created
 * (no write permission, a read-only disk) is reported once and the server runs without a store.
 * @module
 */
import type { ImageStoreConfig } from "../config.ts";
import type { Logger } from "../server/logger.ts";
import type { ByteRange, MediaStore, StoredEntry, StoredImage } from "./media_store.ts";
import { LocalMediaStore } from "./local.ts";
import type { S3StoreOptions } from "./s3.ts";

/** Builds the store for `config`; undefined when there is none or it cannot be used. */
export function createMediaStore(
  config: ImageStoreConfig | undefined,
  logger: Logger,
  now: () => number = Date.now,
): MediaStore | undefined {
  if (!config) return undefined;
  if (config.kind === "s3") return new LazyS3Store(config);
  try {
    return new LocalMediaStore({
      root: config.root,
      ttlMs: config.ttlDays * 86_400_000,
      maxBytes: config.maxBytes,
      logger,
      now,
    });
  } catch (err) {
    logger({
      level: "warn",
      msg: "image store unavailable; images are delivered as SiliconFlow's links",
      store: config.root,
      error: err instanceof Error ? err.message : String(err),
    });
    return undefined;
  }
}

/**
 * The S3 store, its module (and `aws4fetch`) loaded on first use: nothing on the way to the
 * server's first answer needs them.
 */
class LazyS3Store implements MediaStore {
  readonly kind = "s3";
  #store: Promise<MediaStore> | undefined;
  #options: S3StoreOptions;

  constructor(options: S3StoreOptions) {
    this.#options = options;
  }

  #load(): Promise<MediaStore> {
    return this.#store ??= import("./s3.ts").then((m) => new m.S3MediaStore(this.#options));
  }

  async put(bytes: Uint8Array<ArrayBuffer>, type: string, signal?: AbortSignal): Promise<string> {
    return await (await this.#load()).put(bytes, type, signal);
  }

  async putStream(
    body: ReadableStream<Uint8Array>,
    type: string,
    signal?: AbortSignal,
  ): Promise<string> {
    return await (await this.#load()).putStream(body, type, signal);
  }

  async get(name: string, range?: ByteRange): Promise<StoredImage | undefined> {
    return await (await this.#load()).get(name, range);
  }

  async delete(name: string): Promise<void> {
    await (await this.#load()).delete(name);
  }

  async *list(): AsyncIterable<StoredEntry> {
    yield* (await this.#load()).list();
  }

  close(): void {
    this.#store?.then((store) => store.close());
  }
}
