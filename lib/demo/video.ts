/**
 * The stand-in's video side, as SiliconFlow's: `POST …/video/submit` answers a `requestId`,
 * `POST …/video/status` says `InQueue`, then `InProgress`, then `Succeed` with a link, and
 * `GET /demo/videos/{W}x{H}/{seed}.mp4` serves a real, playable MP4 of the demo images' gradient
 * sweeping across the frame, encoded here ({@link encodeMp4}). Like the images, it keeps no state:
 * the request id carries the size, the seed and when the job was submitted.
 * @module
 */
import { encodeMp4 } from "./mp4.ts";

/** Where the stand-in serves its videos. */
export const DEMO_VIDEO_PREFIX = "/demo/videos/";

/** The two colours of a seed's gradient, shared with the demo images. */
export function seedColours(seed: number): [[number, number, number], [number, number, number]] {
  const hue = (seed * 2654435761) % 360;
  return [hsl(hue, 0.65, 0.55), hsl((hue + 140) % 360, 0.7, 0.35)];
}

function hsl(h: number, s: number, l: number): [number, number, number] {
  const k = (n: number) => (n + h / 30) % 12;
  const f = (n: number) =>
    l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1));
  return [Math.round(f(0) * 255), Math.round(f(8) * 255), Math.round(f(4) * 255)];
}

/** The demo clip's length and rate: five seconds, as Wan 2.2 makes, at a few frames a second. */
export const DEMO_VIDEO_SECONDS = 5;
const FPS = 6;

const DRAWN = new Map<string, Uint8Array<ArrayBuffer>>();
const MAX_DRAWN = 8;

/** The demo clip of a size (drawn scaled to `maxSide`) and seed: a looping gradient sweep. */
export function drawDemoVideo(
  width: number,
  height: number,
  seed: number,
  maxSide: number,
): Uint8Array<ArrayBuffer> {
  const scale = Math.min(1, maxSide / Math.max(width, height, 1));
  // Even sides, as 4:2:0 video needs.
  const w = Math.max(16, Math.round((width * scale) / 2) * 2);
  const h = Math.max(16, Math.round((height * scale) / 2) * 2);
  const key = `${w}x${h}/${seed}`;
  const found = DRAWN.get(key);
  if (found) return found;
  const [a, b] = seedColours(seed);
  const frames = DEMO_VIDEO_SECONDS * FPS;
  const pixel = (x: number, y: number, frame: number): [number, number, number] => {
    const u = ((x + (y * w) / h) / (2 * w) + frame / frames) % 1;
    const t = 1 - Math.abs(2 * u - 1);
    return [0, 1, 2].map((c) => a[c] * (1 - t) + b[c] * t) as [number, number, number];
  };
  const mp4 = encodeMp4({ width: w, height: h, fps: FPS, frames, pixel });
  if (DRAWN.size >= MAX_DRAWN) DRAWN.delete(DRAWN.keys().next().value!);
  DRAWN.set(key, mp4);
  return mp4;
}

/** A demo request id: the size, the seed and the submit time, readable back. */
export function demoRequestId(size: string, seed: number, now: number): string {
  return `demo-${size}-${seed}-${now}-${crypto.randomUUID().slice(0, 8)}`;
}

/** What a demo request id says, or undefined when it is not one. */
export function readDemoRequestId(
  id: string,
): { width: number; height: number; seed: number; submitted: number } | undefined {
  const m = /^demo-(\d{1,4})x(\d{1,4})-(\d{1,10})-(\d{1,15})-[0-9a-f]{8}$/.exec(id);
  if (!m) return undefined;
  return { width: +m[1], height: +m[2], seed: +m[3], submitted: +m[4] };
}

/**
 * A demo job's state `elapsed` ms after its submit, for a job that takes `takesMs`: a fifth of
 * it queued, the rest in progress, then done with a link under `origin`.
 */
export function demoVideoStatus(
  id: string,
  now: number,
  takesMs: number,
  origin: string,
): Record<string, unknown> | undefined {
  const job = readDemoRequestId(id);
  if (!job) return undefined;
  const elapsed = now - job.submitted;
  if (elapsed < takesMs / 5) {
    return { status: "InQueue", position: 1, reason: "", results: null };
  }
  if (elapsed < takesMs) return { status: "InProgress", position: 0, reason: "", results: null };
  return {
    status: "Succeed",
    position: 0,
    reason: "",
    results: {
      videos: [{ url: `${origin}${DEMO_VIDEO_PREFIX}${job.width}x${job.height}/${job.seed}.mp4` }],
      timings: { inference: takesMs / 1000 },
      seed: job.seed,
    },
  };
}
