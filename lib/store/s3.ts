/**
 * The S3-compatible image store (`IMAGE_STORE=s3://bucket/prefix`): AWS S3, Cloudflare R2, MinIO
 * and other servers that speak the S3 REST protocol, signed with SigV4 by `aws4fetch` (which runs
 * on Deno and Deno Deploy). Retention is the bucket's lifecycle rule, not this server's.
 * @module
 */
import { AwsClient } from "aws4fetch";
import { concatBytes } from "../bytes.ts";
import type { ImageStoreConfig } from "./config.ts";
import {
  type ByteRange,
  MEDIA_NAME,
  MEDIA_TYPES,
  type MediaStore,
  newImageName,
  type StoredEntry,
  type StoredImage,
} from "./media_store.ts";

/** The size of a multipart upload's parts (S3 takes 5 MiB at least, but for the last). */
export const PART_BYTES = 8 * 1024 * 1024;

/** Reads up to one part (a little more when a chunk overshoots); `done` once the stream ended. */
async function readPart(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<{ bytes: Uint8Array<ArrayBuffer>; done: boolean }> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (size < PART_BYTES) {
    const { value, done } = await reader.read();
    if (done) return { bytes: concatBytes(chunks, size), done: true };
    chunks.push(value);
    size += value.byteLength;
  }
  return { bytes: concatBytes(chunks, size), done: false };
}

/** Where and how to reach the bucket: `IMAGE_STORE=s3://…` and the `S3_*` settings. */
export type S3StoreOptions = Omit<Extract<ImageStoreConfig, { kind: "s3" }>, "kind">;

/** Images in an S3-compatible bucket. */
export class S3MediaStore implements MediaStore {
  readonly kind = "s3";
  #aws: AwsClient;
  #options: S3StoreOptions;
  #base: string;

  /** Creates a client for the bucket; nothing is sent until the first call. */
  constructor(options: S3StoreOptions) {
    this.#options = options;
    this.#aws = new AwsClient({
      accessKeyId: options.accessKeyId,
      secretAccessKey: options.secretAccessKey,
      region: options.region,
      service: "s3",
      // No retries of its own: a failing store is given up on at once (the answer then keeps
      // SiliconFlow's link), never after aws4fetch's default ten tries with backoff.
      retries: 0,
    });
    const endpoint = new URL(options.endpoint);
    this.#base = options.forcePathStyle
      ? `${endpoint.origin}/${options.bucket}`
      : `${endpoint.protocol}//${options.bucket}.${endpoint.host}`;
  }

  #url(name: string): string {
    return `${this.#base}/${this.#options.prefix}${name}`;
  }

  #fetch(url: string, init: RequestInit): Promise<Response> {
    return this.#aws.fetch(url, init);
  }

  async put(
    bytes: Uint8Array<ArrayBuffer>,
    contentType: string,
    signal?: AbortSignal,
  ): Promise<string> {
    const name = newImageName(contentType);
    const response = await this.#fetch(this.#url(name), {
      method: "PUT",
      body: bytes,
      headers: { "content-type": contentType },
      signal,
    });
    await response.body?.cancel();
    if (!response.ok) throw new Error(`S3 PUT answered HTTP ${response.status}`);
    return name;
  }

  /**
   * Bytes still arriving: one PUT when they fit in one part, else S3's multipart upload, a part of
   * {@link PART_BYTES} at a time, so that at most one part is held (a 512 MB video needs 8 MB).
   * A failure or an abort aborts the upload, keeping nothing.
   */
  async putStream(
    body: ReadableStream<Uint8Array>,
    contentType: string,
    signal?: AbortSignal,
  ): Promise<string> {
    const reader = body.getReader();
    const abort = () => reader.cancel(signal?.reason).catch(() => {});
    signal?.addEventListener("abort", abort, { once: true });
    try {
      let part = await readPart(reader);
      if (part.done) return await this.put(part.bytes, contentType, signal);
      const name = newImageName(contentType);
      const url = this.#url(name);
      const created = await this.#fetch(`${url}?uploads`, {
        method: "POST",
        headers: { "content-type": contentType },
        signal,
      });
      const upload = /<UploadId>([^<]+)<\/UploadId>/.exec(await created.text())?.[1];
      if (!created.ok || !upload) {
        throw new Error(`S3 multipart start answered HTTP ${created.status}`);
      }
      const at = `uploadId=${encodeURIComponent(upload)}`;
      try {
        const etags: string[] = [];
        while (part.bytes.byteLength > 0) {
          const sent = await this.#fetch(`${url}?partNumber=${etags.length + 1}&${at}`, {
            method: "PUT",
            body: part.bytes,
            signal,
          });
          await sent.body?.cancel();
          const etag = sent.headers.get("etag");
          if (!sent.ok || !etag) throw new Error(`S3 part upload answered HTTP ${sent.status}`);
          etags.push(etag);
          if (part.done) break;
          part = await readPart(reader);
        }
        const list = etags.map((etag, i) =>
          `<Part><PartNumber>${i + 1}</PartNumber><ETag>${etag}</ETag></Part>`
        ).join("");
        const done = await this.#fetch(`${url}?${at}`, {
          method: "POST",
          body: `<CompleteMultipartUpload>${list}</CompleteMultipartUpload>`,
          headers: { "content-type": "application/xml" },
          signal,
        });
        // S3 can answer 200 and still report an error in the body.
        const answer = await done.text();
        if (!done.ok || answer.includes("<Error>")) {
          throw new Error(`S3 multipart completion answered HTTP ${done.status}`);
        }
        return name;
      } catch (err) {
        const gone = await this.#fetch(`${url}?${at}`, { method: "DELETE" }).catch(() => undefined);
        await gone?.body?.cancel();
        throw err;
      }
    } catch (err) {
      await reader.cancel(err).catch(() => {});
      throw err;
    } finally {
      signal?.removeEventListener("abort", abort);
    }
  }

  async get(name: string, range?: ByteRange): Promise<StoredImage | undefined> {
    const match = MEDIA_NAME.exec(name);
    if (!match) return undefined;
    const response = await this.#fetch(this.#url(name), {
      headers: range ? { range: `bytes=${range.start}-${range.end}` } : {},
    });
    if (response.status === 404 || response.status === 403) {
      await response.body?.cancel();
      return undefined;
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new Error(`S3 GET answered HTTP ${response.status}`);
    }
    const total = /\/(\d+)$/.exec(response.headers.get("content-range") ?? "")?.[1] ??
      response.headers.get("content-length");
    return { body: response.body, size: Number(total ?? 0), contentType: MEDIA_TYPES[match[2]] };
  }

  async delete(name: string): Promise<void> {
    if (!MEDIA_NAME.test(name)) return;
    const response = await this.#fetch(this.#url(name), { method: "DELETE" });
    await response.body?.cancel();
  }

  async *list(): AsyncIterable<StoredEntry> {
    let token: string | undefined;
    do {
      const query = new URLSearchParams({ "list-type": "2", prefix: this.#options.prefix });
      if (token) query.set("continuation-token", token);
      const response = await this.#fetch(`${this.#base}?${query}`, {});
      const xml = await response.text();
      if (!response.ok) throw new Error(`S3 list answered HTTP ${response.status}`);
      for (const [, item] of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        const key = /<Key>([^<]*)<\/Key>/.exec(item)?.[1] ?? "";
        const name = key.slice(this.#options.prefix.length);
        if (!MEDIA_NAME.test(name)) continue;
        yield {
          name,
          size: Number(/<Size>(\d+)<\/Size>/.exec(item)?.[1] ?? 0),
          modified: Date.parse(/<LastModified>([^<]*)<\/LastModified>/.exec(item)?.[1] ?? ""),
        };
      }
      token = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1];
    } while (token);
  }

  close(): void {}
}
