/**
 * The one rule for an image a client sends, whatever the route: chat `image_url` parts, the
 * Images API's `images[].image_url` and multipart uploads, and images taken from the
 * conversation. An image is an http(s) URL, or bytes — a `data:image/…;base64,` URI or an
 * uploaded file — whose first bytes are a PNG, JPEG, WebP or GIF file. Checks run in time
 * linear in the input, and a data URI is passed on as sent.
 * @module
 */
import { invalidParam } from "../server/errors.ts";

const HTTP_URL = /^https?:\/\/[^\s]+$/i;
const DATA_URI_HEAD = /^data:(image\/[a-z0-9.+-]+);base64,/i;
const BASE64_BODY = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

/** Sniffs an image type from its first bytes: png, jpeg, webp or gif. */
export function sniffImageType(bytes: Uint8Array): string | undefined {
  const b = bytes;
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) {
    return "image/png";
  }
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "image/jpeg";
  const ascii = (from: number, to: number) => String.fromCharCode(...b.subarray(from, to));
  if (b.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "image/webp";
  if (b.length >= 6 && (ascii(0, 6) === "GIF87a" || ascii(0, 6) === "GIF89a")) return "image/gif";
  return undefined;
}

/** Whether a string is an http(s) URL as an image reference may be. */
export function isHttpUrl(value: string): boolean {
  return HTTP_URL.test(value);
}

/** A data URI's declared media type and base64 text, or undefined if it is not one. */
export function splitDataUri(value: string): { mediaType: string; base64: string } | undefined {
  const head = DATA_URI_HEAD.exec(value);
  if (!head) return undefined;
  return { mediaType: head[1].toLowerCase(), base64: value.slice(head[0].length) };
}

/** The type sniffed from the first bytes of base64 text, if it is valid base64 of an image. */
function sniffBase64(base64: string): string | undefined {
  if (!BASE64_BODY.test(base64)) return undefined;
  const head = base64.slice(0, 64).replace(/\s+/g, "").slice(0, 16);
  try {
    return sniffImageType(Uint8Array.from(atob(head), (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
}

/** Whether a string is a data URI of an image under the rule above. */
export function isImageDataUri(value: string): boolean {
  const parts = splitDataUri(value);
  return parts !== undefined && sniffBase64(parts.base64) !== undefined;
}

/**
 * Checks one image reference from a client and returns it unchanged; a 400 naming `param`
 * otherwise.
 */
export function checkImageRef(value: unknown, param: string): string {
  if (typeof value === "string" && (isHttpUrl(value) || isImageDataUri(value))) return value;
  const dataUri = typeof value === "string" && splitDataUri(value) !== undefined;
  throw invalidParam(
    param,
    dataUri
      ? `${param} is a data URI, but its base64 is not a png, jpeg, webp or gif image`
      : `${param} must be an http(s) URL or a data:image/...;base64 URI of a png, jpeg, webp or gif image`,
    "invalid_image_url",
  );
}
