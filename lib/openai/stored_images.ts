/**
 * Lasting images on the OpenAI surface: generated images re-hosted in the image store and linked
 * as this server's `/images/{id}.{ext}` (falling back to SiliconFlow's link, with a warning, when
 * the store fails), `GET /images/{id}.{ext}` served with caching and ranges, and earlier images
 * of this server read back from the store for a second-turn edit.
 * @module
 */
import { timeLimit } from "../time_limit.ts";
import { errorText } from "../server/logger.ts";
import type { GenerationOutcome } from "../generation/plan.ts";
import { ApiError } from "../server/errors.ts";
import {
  bytesOf,
  discard,
  MEDIA_NAME,
  type MediaStore,
  STORE_TIMEOUT_MS,
} from "../store/media_store.ts";
import type { RequestContext } from "./context.ts";

/**
 * Where this server's `/images/…` links point: `PUBLIC_BASE_URL`, or with `TRUST_PROXY` the origin
 * a front names in `X-Forwarded-Host`/`-Proto`, or the request's own origin. Forwarded headers from
 * anyone else are ignored: they would let a client write links to a host of its choosing.
 */
export function publicBase(ctx: RequestContext): string {
  if (ctx.app.config.publicBaseUrl) return ctx.app.config.publicBaseUrl;
  if (!ctx.app.config.trustProxy) return ctx.url.origin;
  const headers = ctx.request.headers;
  const host = headers.get("x-forwarded-host")?.split(",")[0].trim();
  const proto = headers.get("x-forwarded-proto")?.split(",")[0].trim();
  const protocol = proto === "https" || proto === "http" ? `${proto}:` : ctx.url.protocol;
  if (host && /^[\w.:[\]-]{1,255}$/.test(host)) return new URL(`${protocol}//${host}`).origin;
  return new URL(`${protocol}//${ctx.url.host}`).origin;
}

/**
 * Stores each generated image and swaps its link for this server's. An image that cannot be
 * stored (its download fails, or the store does, or takes more than a few seconds for bytes it
 * was handed whole) keeps SiliconFlow's link; the answer's notes say so.
 */
export async function storeImages(
  ctx: RequestContext,
  store: MediaStore,
  outcome: GenerationOutcome,
  signal: AbortSignal,
): Promise<string[]> {
  const base = publicBase(ctx);
  const notes: string[] = [];
  await Promise.all(outcome.images.map(async (image, i) => {
    try {
      image.url = `${base}/images/${await storeOne(ctx, store, image.url, signal)}`;
    } catch (err) {
      ctx.app.logger({
        level: "warn",
        msg: "image store failed; answered with SiliconFlow's link",
        req: ctx.requestId,
        error: errorText(err),
      });
      notes.push(
        `Image ${
          i + 1
        } could not be stored, so its link is SiliconFlow's, which expires in about an hour.`,
      );
    }
  }));
  return notes;
}

/**
 * Copies one image into the store: a small one downloaded whole, then put within
 * {@link STORE_TIMEOUT_MS}; a large one streamed from the download into the store, never held
 * whole (a file as it arrives, or S3's multipart upload).
 */
async function storeOne(
  ctx: RequestContext,
  store: MediaStore,
  url: string,
  signal: AbortSignal,
): Promise<string> {
  return await ctx.app.upstream.downloadInto(
    url,
    signal,
    (image, type, until) =>
      image instanceof Uint8Array
        ? putWithin(store, image, type, signal)
        : store.putStream(image, type, until),
  );
}

/** Puts a small image within {@link STORE_TIMEOUT_MS}. */
async function putWithin(
  store: MediaStore,
  image: Uint8Array<ArrayBuffer>,
  type: string,
  signal: AbortSignal,
): Promise<string> {
  const limit = timeLimit(STORE_TIMEOUT_MS, signal);
  try {
    return await store.put(image, type, limit.signal);
  } finally {
    limit.clear();
  }
}

/** The store name in one of this server's image links, when the link is one. */
function ownImageName(ctx: RequestContext, url: string): string | undefined {
  const link = storedImageLink(url);
  if (!link) return undefined;
  // Read as links too, so that a base's case or default port does not matter.
  const ours = [ctx.url.origin, publicBase(ctx)]
    .map((base) => storedImageLink(`${base}/images/${link.name}`)?.base);
  return ours.includes(link.base) ? link.name : undefined;
}

/**
 * The store name of an `/images/{name}` link to a stored image (not a video), and the base the
 * link is under: an origin, or `PUBLIC_BASE_URL` with its path.
 */
export function storedImageLink(url: string): { name: string; base: string } | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  const name = /\/images\/([^/]+)$/.exec(parsed.pathname)?.[1];
  if (!name || !MEDIA_NAME.test(name) || name.endsWith(".mp4")) return undefined;
  const path = parsed.pathname.slice(0, -`/images/${name}`.length);
  return { name, base: parsed.origin + path };
}

/** The largest stored image read back for an edit. */
const MAX_INLINE_BYTES = 10 * 1024 * 1024;

/**
 * Earlier images of this server, read from the store and sent to SiliconFlow as data URIs
 * (SiliconFlow cannot reach a private server, and stays unaware of the store). Others pass as
 * they are; a stored image that is gone is a 400 naming `param`.
 */
export async function inlineOwnImages(
  ctx: RequestContext,
  images: string[],
  param: string,
): Promise<string[]> {
  const store = ctx.app.store;
  if (!store) return images;
  return await Promise.all(images.map(async (url) => {
    const name = ownImageName(ctx, url);
    if (!name) return url;
    const stored = await store.get(name);
    if (!stored || stored.size > MAX_INLINE_BYTES) {
      await discard(stored);
      throw new ApiError(400, `The image ${url} is no longer stored here; attach it again.`, {
        param,
        code: "image_not_found",
      });
    }
    return `data:${stored.contentType};base64,${(await bytesOf(stored)).toBase64()}`;
  }));
}

/**
 * An image this server answered with, as base64: read from the store when the link is this
 * server's own (never fetched over HTTP: its host may be one a client named, with TRUST_PROXY, and
 * in demo mode nothing listens there), else downloaded from SiliconFlow.
 */
export async function answeredImage(
  ctx: RequestContext,
  url: string,
  signal: AbortSignal,
  param: string,
): Promise<{ base64: string; contentType: string }> {
  const [inlined] = await inlineOwnImages(ctx, [url], param);
  return await ctx.app.upstream.download(inlined, signal);
}

/** A `Range: bytes=…` header as one inclusive range within `size`; undefined for none or many. */
function parseRange(
  header: string | null,
  size: number,
): { start: number; end: number } | "bad" | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined; // several ranges, or a unit we do not serve
  let start: number, end: number;
  if (m[1] === "") {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return start > end || start >= size ? "bad" : { start, end };
}

const IMMUTABLE = "public, max-age=31536000, immutable";

/** `GET /images/{id}.{ext}` (and `/videos/{id}.mp4`): the stored file, with ETag, caching and ranges. */
export function serveStoredMedia(
  ctx: RequestContext,
  params: Readonly<Record<string, string | undefined>>,
): Promise<Response> {
  const name = params.name ?? "";
  const notFound = () =>
    new ApiError(404, "No such image", { param: "name", code: "image_not_found" });
  if (!MEDIA_NAME.test(name)) throw notFound();
  return serveStored(ctx, name, notFound);
}

/**
 * Headers of every stored image and video: a browser never sniffs them into something else, and a
 * file opened on its own runs nothing (a sandbox with no sources).
 */
export const MEDIA_HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'none'; media-src 'self'; sandbox",
};

/** A file of the store, streamed (or answered from one read), with ETag, caching and ranges. */
export async function serveStored(
  ctx: RequestContext,
  name: string,
  notFound: () => ApiError,
  cacheControl = IMMUTABLE,
): Promise<Response> {
  const store = ctx.app.store;
  if (!store) throw notFound();
  const etag = `"${name.split(".")[0]}"`;
  const headers: Record<string, string> = {
    etag,
    "cache-control": cacheControl,
    "accept-ranges": "bytes",
    ...MEDIA_HEADERS,
  };
  if (ctx.request.headers.get("if-none-match") === etag) {
    return new Response(null, { status: 304, headers });
  }
  const whole = await store.get(name);
  if (!whole) throw notFound();
  const range = parseRange(ctx.request.headers.get("range"), whole.size);
  if (range === "bad") {
    await discard(whole);
    return new Response(null, {
      status: 416,
      headers: { ...headers, "content-range": `bytes */${whole.size}` },
    });
  }
  headers["content-type"] = whole.contentType;
  if (!range) {
    headers["content-length"] = String(whole.size);
    return new Response(whole.body, { headers });
  }
  await discard(whole);
  const part = await store.get(name, range);
  if (!part) throw notFound();
  headers["content-range"] = `bytes ${range.start}-${range.end}/${whole.size}`;
  headers["content-length"] = String(range.end - range.start + 1);
  return new Response(part.body, { status: 206, headers });
}
