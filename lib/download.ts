/**
 * Downloads a generated image from the URL SiliconFlow returned (which expires in an hour), with a
 * timeout and a size cap, reading the body once. Only URLs from SiliconFlow's answers are ever
 * passed here, never one taken from a client's request.
 * @module
 */
import { encodeBase64 } from "@std/encoding/base64";
import { ApiError } from "./errors.ts";
import { readLimited } from "./siliconflow.ts";

/** The largest generated image downloaded for `b64_json` or data delivery. */
export const MAX_DOWNLOAD_BYTES: number = 50 * 1024 * 1024;

/** A downloaded image. */
export interface DownloadedImage {
  /** The image bytes, base64-encoded. */
  base64: string;
  /** Its media type, e.g. `image/png`. */
  contentType: string;
}

/** Options of {@link downloadImage}. */
export interface DownloadOptions {
  /** The fetch to use (the demo mode serves its images in-process). */
  fetch: typeof fetch;
  /** Gives up after this many milliseconds. */
  timeoutMs: number;
  /** Aborts when the client goes away. */
  signal?: AbortSignal;
  /** Size cap in bytes. */
  maxBytes?: number;
}

/** Fetches an image URL (or unpacks a base64 data URI) as base64. Throws a 502 on failure. */
export async function downloadImage(
  url: string,
  options: DownloadOptions,
): Promise<DownloadedImage> {
  const dataUri = /^data:(image\/[\w.+-]+);base64,(.*)$/is.exec(url);
  if (dataUri) return { contentType: dataUri[1], base64: dataUri[2] };
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs);
  const onAbort = () => controller.abort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const response = await options.fetch(url, { signal: controller.signal });
    if (!response.ok) {
      await response.body?.cancel();
      throw new ApiError(502, `Downloading the generated image failed: HTTP ${response.status}`, {
        code: "image_download_failed",
      });
    }
    const length = Number(response.headers.get("content-length") ?? NaN);
    const bytes = await readLimited(
      response.body,
      options.maxBytes ?? MAX_DOWNLOAD_BYTES,
      Number.isSafeInteger(length) && length >= 0 ? length : undefined,
    );
    if (!bytes) {
      throw new ApiError(502, "The generated image is larger than the download limit", {
        code: "image_download_failed",
      });
    }
    const contentType = response.headers.get("content-type")?.split(";")[0].trim() || "image/png";
    return { contentType, base64: encodeBase64(bytes) };
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError(
      controller.signal.aborted && !options.signal?.aborted ? 504 : 502,
      `Downloading the generated image failed: ${(err as Error)?.message ?? err}`.slice(0, 300),
      { code: "image_download_failed" },
    );
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}
