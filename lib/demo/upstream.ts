/**
 * The built-in stand-in for SiliconFlow. It answers `POST …/images/generations` like the real
 * API (same per-model rules, same error bodies, a trace id header) and serves the PNG images it
 * "generates" at `GET /demo/images/{W}x{H}/{seed}.png`, drawn on demand from the URL alone, so
 * it keeps no state. The demo mode and the test suite's fake upstream both use it. The per-model
 * rules come from the registry, passed in, so this side of the bridge does not import that one.
 * @module
 */
import { jsonResponse } from "../server/response.ts";
import { DEMO_IMAGE_PREFIX, type ListedModel, TRACE_HEADER } from "../siliconflow/client.ts";
import {
  DEMO_VIDEO_PREFIX,
  demoRequestId,
  demoVideoStatus,
  drawDemoVideo,
  seedColours,
} from "./video.ts";
import { compressIndexedRows, indexedPng } from "./png.ts";

/** The path prefix under which the stand-in serves its images. */

/** SiliconFlow's refusal of a request body: its error code and message. */
export interface Refusal {
  /** SiliconFlow's numeric error code, e.g. 20015. */
  code: number;
  /** Its message. */
  message: string;
}

/** Options of {@link createDemoUpstream}. */
export interface DemoUpstreamOptions {
  /**
   * The per-model rules the stand-in applies, as SiliconFlow would: a refusal, or undefined for
   * a body it takes. The registry provides them (`upstreamRules` in `generation/schemas.ts`).
   */
  rules: (body: Record<string, unknown>) => Refusal | undefined | Promise<Refusal | undefined>;
  /** Largest side of a drawn image; larger requests are drawn scaled down. */
  maxSide?: number;
  /**
   * Models the stand-in lists at `GET …/models` beyond none, and serves without the rules (as
   * SiliconFlow serves models this server's registry does not know). Read on every request.
   */
  listing?: () => readonly ListedModel[];
  /** SiliconFlow's rules for a video submit (`videoRules` in `generation/schemas.ts`). */
  videoRules?: (
    body: Record<string, unknown>,
  ) => Refusal | undefined | Promise<Refusal | undefined>;
  /** How long a demo video job takes, from submit to done; read on every status. Default 4 s. */
  videoMs?: () => number;
  /** The clock. */
  now?: () => number;
}

function json(status: number, body: unknown, traceId: string): Response {
  return jsonResponse(body, status, { [TRACE_HEADER]: traceId });
}

function sfError(status: number, code: number, message: string, traceId: string): Response {
  return json(status, { code, message, data: null }, traceId);
}

// The gradient of each size is drawn and compressed once (a few sizes at most are kept); a seed
// only picks its palette, so an image costs a copy of the compressed data, not a drawing.
const GRADIENTS = new Map<string, Promise<Uint8Array>>();
const MAX_GRADIENTS = 16;

function gradient(width: number, height: number): Promise<Uint8Array> {
  const key = `${width}x${height}`;
  let found = GRADIENTS.get(key);
  if (found) {
    GRADIENTS.delete(key); // most recently used goes last
  } else {
    // Palette index along the diagonal: row y is the ramp over x, shifted by y's share.
    const ramp = new Uint8Array(2 * width + 1);
    for (let i = 0; i < ramp.length; i++) ramp[i] = Math.round((i / (2 * width)) * 255);
    found = compressIndexedRows(width, height, (y, out) => {
      const shift = Math.round((y / height) * width);
      out.set(ramp.subarray(shift, shift + width));
    });
    if (GRADIENTS.size >= MAX_GRADIENTS) GRADIENTS.delete(GRADIENTS.keys().next().value!);
  }
  GRADIENTS.set(key, found);
  return found;
}

/** Draws the demo picture for a seed: a two-colour diagonal gradient. */
export async function drawDemoImage(
  width: number,
  height: number,
  seed: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const [a, b] = seedColours(seed);
  const palette = Array.from({ length: 256 }, (_, i) => {
    const t = i / 255;
    return [0, 1, 2].map((c) => Math.round(a[c] * (1 - t) + b[c] * t)) as [number, number, number];
  });
  return indexedPng(width, height, await gradient(width, height), palette);
}

/**
 * SiliconFlow's chat completions as the stand-in answers them, for prompt rewriting: the last user
 * message with a few words of detail added, and tokens counted as a quarter of the characters.
 */
function demoChat(body: Record<string, unknown>): Record<string, unknown> {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const texts = messages.map((m) => (typeof m?.content === "string" ? m.content : ""));
  const last = [...messages].reverse().find((m) => m?.role === "user");
  const prompt = typeof last?.content === "string" ? last.content.trim() : "";
  const content = `${prompt}, rich detail, soft natural light, balanced composition`;
  const tokens = (text: string) => Math.ceil(text.length / 4);
  const promptTokens = tokens(texts.join(""));
  return {
    id: `demo-chat-${crypto.randomUUID()}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: tokens(content),
      total_tokens: promptTokens + tokens(content),
    },
  };
}

/** Creates the stand-in's request handler. */
export function createDemoUpstream(
  options: DemoUpstreamOptions,
): (request: Request) => Promise<Response> {
  const maxSide = options.maxSide ?? 2048;
  const now = options.now ?? Date.now;
  return async (request) => {
    const url = new URL(request.url);
    const traceId = `demo-${crypto.randomUUID()}`;
    const image = url.pathname.startsWith(DEMO_IMAGE_PREFIX)
      ? /^(\d{1,4})x(\d{1,4})\/(\d{1,10})\.png$/.exec(url.pathname.slice(DEMO_IMAGE_PREFIX.length))
      : null;
    if (image && (request.method === "GET" || request.method === "HEAD")) {
      let [w, h] = [Number(image[1]), Number(image[2])];
      const scale = Math.min(1, maxSide / Math.max(w, h, 1));
      [w, h] = [Math.max(1, Math.round(w * scale)), Math.max(1, Math.round(h * scale))];
      const png = await drawDemoImage(w, h, Number(image[3]));
      return new Response(png, {
        headers: {
          "content-type": "image/png",
          "cache-control": "public, max-age=31536000, immutable",
        },
      });
    }
    const video = url.pathname.startsWith(DEMO_VIDEO_PREFIX)
      ? /^(\d{1,4})x(\d{1,4})\/(\d{1,10})\.mp4$/.exec(url.pathname.slice(DEMO_VIDEO_PREFIX.length))
      : null;
    if (video && (request.method === "GET" || request.method === "HEAD")) {
      const mp4 = drawDemoVideo(+video[1], +video[2], +video[3], Math.min(maxSide, 160));
      return new Response(mp4, {
        headers: { "content-type": "video/mp4", "cache-control": "public, max-age=3600" },
      });
    }
    if (url.pathname.endsWith("/models") && request.method === "GET") {
      const subType = url.searchParams.get("sub_type");
      const type = url.searchParams.get("type");
      const data = (options.listing?.() ?? [])
        .filter((m) => !subType || m.subType === subType)
        .filter((m) => !type || (type === "video") === (m.subType === "video"))
        .map((m) => ({ id: m.id, object: "model", created: 0, owned_by: "" }));
      return json(200, { object: "list", data }, traceId);
    }
    const videoCall = /\/video\/(submit|status)$/.exec(url.pathname)?.[1];
    const chatCall = url.pathname.endsWith("/chat/completions");
    if (
      (!url.pathname.endsWith("/images/generations") && !videoCall && !chatCall) ||
      request.method !== "POST"
    ) {
      return new Response("404 page not found", {
        status: 404,
        headers: { [TRACE_HEADER]: traceId },
      });
    }
    if (!/^Bearer \S+$/.test(request.headers.get("authorization") ?? "")) {
      return new Response('"Invalid token"', {
        status: 401,
        headers: { [TRACE_HEADER]: traceId },
      });
    }
    let body: Record<string, unknown>;
    try {
      body = await request.json();
      if (!body || typeof body !== "object" || Array.isArray(body)) {
        throw new Error("not an object");
      }
    } catch {
      return sfError(400, 20015, "Invalid JSON body", traceId);
    }
    if (chatCall) return json(200, demoChat(body), traceId);
    if (videoCall === "status") {
      const takes = options.videoMs?.() ?? 4_000;
      const state = typeof body.requestId === "string"
        ? demoVideoStatus(body.requestId, now(), takes, url.origin)
        : undefined;
      if (!state) return sfError(400, 20015, "requestId not found", traceId);
      return json(200, state, traceId);
    }
    if (videoCall === "submit") {
      const listed = options.listing?.().some((m) => m.id === body.model) ?? false;
      const refusal = listed ? undefined : await options.videoRules?.(body);
      if (refusal) return sfError(400, refusal.code, refusal.message, traceId);
      const size = typeof body.image_size === "string" ? body.image_size : "1280x720";
      const seed = typeof body.seed === "number" ? body.seed : Math.floor(Math.random() * 1e9);
      return json(200, { requestId: demoRequestId(size, seed, now()) }, traceId);
    }
    const listed = options.listing?.().some((m) => m.id === body.model) ?? false;
    const refusal = listed ? undefined : await options.rules(body);
    if (refusal) return sfError(400, refusal.code, refusal.message, traceId);
    const size = /^(\d{1,4})x(\d{1,4})$/.exec(
      typeof body.image_size === "string" ? body.image_size : "",
    ) ?? [null, "1024", "1024"];
    const seed = typeof body.seed === "number" ? body.seed : Math.floor(Math.random() * 1e9);
    const count = typeof body.batch_size === "number" ? body.batch_size : 1;
    const list = Array.from({ length: count }, (_, i) => ({
      url: `${url.origin}${DEMO_IMAGE_PREFIX}${size[1]}x${size[2]}/${(seed + i) % 1e10}.png`,
    }));
    return json(200, { images: list, data: list, timings: { inference: 0.01 }, seed }, traceId);
  };
}
