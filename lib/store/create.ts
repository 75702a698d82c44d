/**
 * The image store a configuration asks for, or none: a local folder that cannot be created
 * (no write permission, a read-only disk) is reported once and the server runs without a store.
 * @module
 */
import type { ImageStoreConfig } from "../config.ts";
import type { Logger } from "../server/logger.ts";
import type { ImageStore } from "./image_store.ts";
import { LocalImageStore } from "./local.ts";
import { S3ImageStore } from "./s3.ts";

/** Builds the store for `config`; undefined when there is none or it cannot be used. */
export function createImageStore(
  config: ImageStoreConfig | undefined,
  logger: Logger,
  now: () => number = Date.now,
): ImageStore | undefined {
  if (!config) return undefined;
  if (config.kind === "s3") return new S3ImageStore(config);
  try {
    return new LocalImageStore({
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
