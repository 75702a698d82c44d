/**
 * Downloads a generated image from the URL SiliconFlow returned (which expires in an hour), with a
 * timeout and a size cap, reading the body once. Only URLs from SiliconFlow's answers are ever
 * passed here, never one taken from a client's request.
 * @module
 */
import { readResponse } from "../server/fetched_body.ts";
import { deadline } from "../server/deadline.ts";
import { ApiError } from "../server/errors.ts";
import { splitDataUri } from "./image_ref.ts";

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

/** The most redirects followed for one image. */
export const MAX_REDIRECTS = 3;

/** GETs a URL, following at most {@link MAX_REDIRECTS} redirects, and only to http(s) URLs. */
async function fetchFollowing(
  url: string,
  fetcher: typeof fetch,
  signal: AbortSignal,
): Promise<Response> {
  let current = url;
  for (let hop = 0;; hop++) {
    const response = await fetcher(current, { signal, redirect: "manual" });
    const location = response.headers.get("location");
    if (response.status < 300 || response.status > 399 || location === null) return response;
    await response.body?.cancel();
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      next = new URL("invalid:");
    }
    if (hop >= MAX_REDIRECTS || (next.protocol !== "http:" && next.protocol !== "https:")) {
      throw new ApiError(
        502,
        hop >= MAX_REDIRECTS
          ? `Downloading the generated image failed: more than ${MAX_REDIRECTS} redirects`
          : "Downloading the generated image failed: redirected to a URL that is not http(s)",
        { code: "image_download_failed" },
      );
    }
    current = next.href;
  }
}

/** Fetches an image URL (or unpacks a base64 data URI) as base64. Throws a 502 on failure. */
export async function downloadImage(
  url: string,
  options: DownloadOptions,
): Promise<DownloadedImage> {
  const dataUri = splitDataUri(url);
  if (dataUri) return { contentType: dataUri.mediaType, base64: dataUri.base64 };
  const { bytes, contentType } = await downloadBytes(url, options);
  return { contentType, base64: bytes.toBase64() };
}

/** Fetches an image URL (or unpacks a base64 data URI) as bytes. Throws a 502 on failure. */
export async function downloadBytes(
  url: string,
  options: DownloadOptions,
): Promise<{ bytes: Uint8Array<ArrayBuffer>; contentType: string }> {
  const dataUri = splitDataUri(url);
  if (dataUri) {
    return { contentType: dataUri.mediaType, bytes: Uint8Array.fromBase64(dataUri.base64) };
  }
  const limit = deadline(options.timeoutMs, options.signal);
  try {
    const response = await fetchFollowing(url, options.fetch, limit.signal);
    if (!response.ok) {
      await response.body?.cancel();
      throw new ApiError(502, `Downloading the generated image failed: HTTP ${response.status}`, {
        code: "image_download_failed",
      });
    }
    const bytes = await readResponse(response, options.maxBytes ?? MAX_DOWNLOAD_BYTES);
    if (!bytes) {
      throw new ApiError(502, "The generated image is larger than the download limit", {
        code: "image_download_failed",
      });
    }
    const contentType = response.headers.get("content-type")?.split(";")[0].trim() || "image/png";
    return { contentType, bytes };
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError(
      limit.timedOut() ? 504 : 502,
      `Downloading the generated image failed: ${(err as Error)?.message ?? err}`.slice(0, 300),
      { code: "image_download_failed", cause: err },
    );
  } finally {
    limit.clear();
  }
}
