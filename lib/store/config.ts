/**
 * The image store's configuration: `IMAGE_STORE` (a folder, `s3://bucket/prefix`, or `none`), its
 * retention and S3 settings, `PUBLIC_BASE_URL`, and `IMAGE_DELIVERY`, whose choices depend on it.
 * @module
 */
import { baseUrlOf, boolean, ConfigError, type IntegerReader, oneOf } from "../config_values.ts";

/** Where images are kept (`IMAGE_STORE`). */
export type ImageStoreConfig =
  | { kind: "local"; root: string; ttlDays: number; maxBytes: number }
  | {
    kind: "s3";
    /** The bucket. */
    bucket: string;
    /** A key prefix, e.g. `images/` (may be empty). */
    prefix: string;
    /** The endpoint, e.g. `https://s3.us-east-1.amazonaws.com` or `http://127.0.0.1:9000`. */
    endpoint: string;
    /** The region (`auto` for R2). */
    region: string;
    /** The access key id. */
    accessKeyId: string;
    /** The secret access key. */
    secretAccessKey: string;
    /** Path-style addressing (`endpoint/bucket/key`), as MinIO and most self-hosted servers want. */
    forcePathStyle: boolean;
  };

/** How long the store keeps what it holds, in days: the local store's TTL; S3's own rules are unknown here. */
export function keptDays(store: ImageStoreConfig | undefined): number | undefined {
  return store?.kind === "local" ? store.ttlDays : undefined;
}

/**
 * `IMAGE_STORE` (a folder, `s3://bucket/prefix`, or `none`), its settings, `PUBLIC_BASE_URL`, and
 * `IMAGE_DELIVERY`, whose default is `store` when there is a store. Without `IMAGE_STORE`, the
 * store is `./data/images`, except on Deno Deploy, which has no writable disk.
 */
export function storeOf(
  get: (name: string) => string | undefined,
  int: IntegerReader,
  defaults: { imageStore: string; imageTtlDays: number; imageStoreMaxBytes: number },
): {
  imageStore?: ImageStoreConfig;
  imageDelivery: "url" | "data" | "store";
  publicBaseUrl?: string;
} {
  const raw = (get("IMAGE_STORE") ?? "").trim() ||
    (get("DENO_DEPLOYMENT_ID") ? "none" : defaults.imageStore);
  let imageStore: ImageStoreConfig | undefined;
  if (raw.toLowerCase().startsWith("s3://")) {
    const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/i.exec(raw);
    if (!m) throw new ConfigError("IMAGE_STORE", `is not s3://bucket/prefix: "${raw}"`);
    const need = (name: string) => {
      const value = (get(name) ?? "").trim();
      if (!value) throw new ConfigError(name, "is needed with IMAGE_STORE=s3://…");
      return value;
    };
    const prefix = (m[2] ?? "").replace(/^\/+/, "");
    imageStore = {
      kind: "s3",
      bucket: m[1],
      prefix: prefix && !prefix.endsWith("/") ? `${prefix}/` : prefix,
      endpoint: baseUrlOf(need("S3_ENDPOINT"), "S3_ENDPOINT"),
      region: (get("S3_REGION") ?? "").trim() || "us-east-1",
      accessKeyId: need("S3_ACCESS_KEY_ID"),
      secretAccessKey: need("S3_SECRET_ACCESS_KEY"),
      forcePathStyle: boolean("S3_FORCE_PATH_STYLE", get("S3_FORCE_PATH_STYLE")),
    };
  } else if (raw.toLowerCase() !== "none") {
    imageStore = {
      kind: "local",
      root: raw.replace(/\/+$/, "") || ".",
      ttlDays: int("IMAGE_TTL_DAYS", defaults.imageTtlDays, 1, 36_500),
      maxBytes: int("IMAGE_STORE_MAX_BYTES", defaults.imageStoreMaxBytes, 1024 * 1024, 2 ** 50),
    };
  }
  const deliveries = imageStore ? ["store", "url", "data"] as const : ["url", "data"] as const;
  const rawBase = (get("PUBLIC_BASE_URL") ?? "").trim();
  return {
    imageStore,
    imageDelivery: oneOf("IMAGE_DELIVERY", get("IMAGE_DELIVERY"), deliveries),
    publicBaseUrl: rawBase ? baseUrlOf(rawBase, "PUBLIC_BASE_URL") : undefined,
  };
}
