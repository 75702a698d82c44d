/**
 * The media store: generated images and videos re-hosted where their links do not expire. One
 * small interface ({@link MediaStore}) with two implementations: a local folder (the embedded
 * default) and S3-compatible object storage (Deno Deploy, several instances, R2, MinIO, AWS S3).
 * Files are named by an unguessable id (128 random bits) and keep their media type in their
 * extension.
 * @module
 */
import { randomToken } from "../values.ts";

/** The media types the store keeps, by extension. */
export const MEDIA_TYPES: Readonly<Record<string, string>> = {
  png: "image/png",
  jpg: "image/jpeg",
  webp: "image/webp",
  gif: "image/gif",
  // Videos made by the video jobs share the store, its size cap and its TTL.
  mp4: "video/mp4",
};

/** The extension for a media type (png when it is none the store knows). */
export function extensionOf(contentType: string): string {
  const type = contentType.split(";")[0].trim().toLowerCase();
  if (type === "image/jpeg") return "jpg";
  const found = Object.entries(MEDIA_TYPES).find(([, t]) => t === type);
  return found ? found[0] : "png";
}

/** A stored file's name: `{id}.{ext}`, the id 22 base64url characters (128 random bits). */
export const MEDIA_NAME = /^([A-Za-z0-9_-]{22})\.(png|jpg|webp|gif|mp4)$/;

/** A new unguessable image name for a media type. */
export function newImageName(contentType: string): string {
  return `${randomToken(16)}.${extensionOf(contentType)}`;
}

/** A byte range of a stored image, inclusive, as a `Range` header asks for it. */
export interface ByteRange {
  /** First byte. */
  start: number;
  /** Last byte. */
  end: number;
}

/** A stored image being read. */
export interface StoredImage {
  /**
   * The bytes (the whole image, or the range asked for): streamed, or read already when the
   * whole image was small. Either can be a `Response` body; {@link bytesOf} and {@link discard}
   * take both.
   */
  body: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer>;
  /** The whole image's size in bytes. */
  size: number;
  /** Its media type. */
  contentType: string;
}

/** One stored image, as the clean-up sees it. */
export interface StoredEntry {
  /** `{id}.{ext}`. */
  name: string;
  /** Bytes. */
  size: number;
  /** When it was written (ms since the epoch). */
  modified: number;
}

/** Where images are kept. */
export interface MediaStore {
  /** `local` or `s3`, for health reports and logs. */
  readonly kind: "local" | "s3";
  /** Stores bytes under a new name and answers it; gives up when `signal` aborts. */
  put(bytes: Uint8Array<ArrayBuffer>, contentType: string, signal?: AbortSignal): Promise<string>;
  /**
   * The same for bytes still arriving: each chunk is written as it comes, never held whole (the
   * local folder writes them to a file; S3 sends them as the parts of a multipart upload).
   * Gives up when `signal` (the download's) aborts or the stream errors, keeping nothing.
   */
  putStream(
    body: ReadableStream<Uint8Array>,
    contentType: string,
    signal?: AbortSignal,
  ): Promise<string>;
  /** Reads an image (a range of it, when given); undefined for a name it does not hold. */
  get(name: string, range?: ByteRange): Promise<StoredImage | undefined>;
  /** Deletes an image; a name it does not hold is no error. */
  delete(name: string): Promise<void>;
  /** Every stored image, for clean-up. */
  list(): AsyncIterable<StoredEntry>;
  /** Stops background work (the sweep). */
  close(): void;
}

/** A stored image's bytes, read whole. */
export async function bytesOf(image: StoredImage): Promise<Uint8Array<ArrayBuffer>> {
  return image.body instanceof Uint8Array ? image.body : await new Response(image.body).bytes();
}

/** Lets a stored image that will not be read go (its file or connection). */
export async function discard(image: StoredImage | undefined): Promise<void> {
  if (image && !(image.body instanceof Uint8Array)) await image.body.cancel();
}

/** How long storing one image may take before the answer falls back to SiliconFlow's link. */
export const STORE_TIMEOUT_MS = 5_000;
