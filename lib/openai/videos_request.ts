/**
 * The request side of the Videos API: `POST /v1/videos` as JSON or multipart, with the first
 * frame (`input_reference`) as a file, an image URL or a `data:` URI (newer SDKs send it as an
 * object with `image_url`), and the video object OpenAI's SDKs read back.
 * @module
 */
import { z } from "zod";
import { invalidParam } from "../server/errors.ts";
import { zodError } from "../generation/zod_error.ts";
import type { MultipartPart } from "../server/multipart.ts";
import { isJsonObject, present } from "../values.ts";
import { checkImageRef } from "../siliconflow/image_ref.ts";
import { progressAt, type VideoJob } from "../jobs/video.ts";
import { toDataUri } from "./images_request.ts";

/** The model used when a request names none, as OpenAI's own default. */
export const DEFAULT_VIDEO_MODEL = "sora-2";

const Body = z.looseObject({
  prompt: z.string({ error: "prompt is required and must be a string" }),
  model: z.string().nullish(),
  seconds: z.union([z.string(), z.number()]).nullish(),
  size: z.string().nullish(),
});

/** A Videos API request, checked for shape. */
export interface VideoRequest {
  /** The whole body, for the model's own parameters (`image_size`, `seed`, `negative_prompt`). */
  fields: Record<string, unknown>;
  /** The prompt. */
  prompt: string;
  /** The model as named (the default when none is). */
  model: string;
  /** The first frame, an http(s) URL or a data URI. */
  image?: string;
  /** The field the first frame came in, for errors. */
  imageParam?: string;
  /** Fields of another dialect that cannot be honoured here, by name. */
  ignored: string[];
}

function checked(
  fields: Record<string, unknown>,
  image?: string,
  found: { imageParam?: string; ignored?: string[] } = {},
): VideoRequest {
  const parsed = Body.safeParse(fields);
  if (!parsed.success) throw zodError(parsed.error);
  return {
    fields,
    prompt: parsed.data.prompt,
    model: parsed.data.model || DEFAULT_VIDEO_MODEL,
    image,
    imageParam: found.imageParam,
    ignored: found.ignored ?? [],
  };
}

/** An image given as a URL or data URI, `{url}`, or `{image_url}` (a string or `{url}`). */
function imageRefOf(raw: unknown, param: string): string | undefined {
  let ref = raw;
  if (isJsonObject(ref)) ref = ref.image_url ?? ref.url;
  if (isJsonObject(ref)) ref = ref.url;
  return ref === undefined || ref === null || ref === "" ? undefined : checkImageRef(ref, param);
}

/**
 * OpenRouter's `frame_images`: its `first_frame` is the video's first frame; a `last_frame` (Wan
 * 2.2 takes none) is named as ignored.
 */
function firstFrame(raw: unknown, ignored: string[]): string | undefined {
  if (!present(raw)) return undefined;
  if (!Array.isArray(raw) || raw.length > 8) {
    throw invalidParam("frame_images", "frame_images must be a list of at most 8 images");
  }
  let first: string | undefined;
  raw.forEach((frame, i) => {
    const param = `frame_images[${i}]`;
    if (!isJsonObject(frame)) throw invalidParam(param, "A frame image must be an object");
    const type = frame.frame_type ?? "first_frame";
    if (type !== "first_frame") {
      if (!ignored.includes(`${param}.frame_type`)) ignored.push(`${param}.frame_type`);
      return;
    }
    if (first) throw invalidParam(param, "Send one first_frame image");
    first = imageRefOf(frame.image_url ?? frame.url, `${param}.image_url`);
  });
  return first;
}

/**
 * A JSON body, in OpenAI's, LobeHub's or OpenRouter's words: the first frame as `input_reference`
 * (a URL or data URI, or `{image_url}`) or as `frame_images[]`'s `first_frame`.
 * `input_references` (OpenRouter's style references) and `generate_audio` have no counterpart on
 * SiliconFlow and are named as ignored.
 */
export function parseVideoJson(fields: Record<string, unknown>): VideoRequest {
  const ignored: string[] = [];
  const reference = imageRefOf(fields.input_reference, "input_reference");
  const frame = firstFrame(fields.frame_images, ignored);
  if (reference && frame) {
    throw invalidParam(
      "frame_images",
      "Send the first frame once: as input_reference or as frame_images, not both",
    );
  }
  if (Array.isArray(fields.input_references) && fields.input_references.length) {
    ignored.push("input_references");
  }
  if (fields.generate_audio === true) ignored.push("generate_audio");
  const imageParam = frame ? "frame_images" : "input_reference";
  return checked(fields, reference ?? frame, { imageParam, ignored });
}

/** A multipart body: text fields, and `input_reference` as a file or as a URL in a text field. */
export function parseVideoForm(form: readonly MultipartPart[]): VideoRequest {
  const fields: Record<string, unknown> = {};
  let image: string | undefined;
  for (const [name, value] of form) {
    // The SDKs send `{image_url}` in a form as `input_reference[image_url]`.
    if (/^input_reference(\[(image_url|url)\])?$/.test(name)) {
      if (image) throw invalidParam("input_reference", "Send one input_reference image");
      image = toDataUri(value, "input_reference", 0);
    } else if (typeof value === "string") fields[name] = value;
  }
  return checked(fields, image);
}

/** OpenAI's video object. */
export interface VideoObject {
  id: string;
  object: "video";
  created_at: number;
  completed_at: number | null;
  expires_at: number | null;
  status: VideoJob["status"];
  progress: number;
  model: string;
  prompt: string;
  seconds: string;
  size: string;
  remixed_from_video_id: null;
  error: { code: string; message: string } | null;
  /** Where it is polled (OpenRouter's `polling_url`). */
  polling_url: string;
  /** Once completed: the lasting copy, or SiliconFlow's link while it works (LobeHub reads it). */
  url?: string;
  /** The same, as OpenRouter's list. */
  urls?: string[];
}

/**
 * A job as OpenAI's video object at `now`, with OpenRouter's and LobeHub's fields; `keptDays` is
 * how long a stored copy lasts, `base` where this server's links point.
 */
export function videoObject(
  job: VideoJob,
  keptDays: number | undefined,
  now: number,
  base: string,
): VideoObject {
  const s = (ms: number | undefined) => (ms === undefined ? null : Math.floor(ms / 1000));
  const done = job.status === "completed";
  const expires = !done
    ? undefined
    : job.stored
    ? (keptDays === undefined ? undefined : (job.finished ?? job.created) + keptDays * 86_400_000)
    : job.urlExpires;
  const url = !done
    ? undefined
    : job.stored
    ? `${base}/videos/${job.stored}`
    : job.url && (job.urlExpires ?? 0) > now
    ? job.url
    : undefined;
  return {
    id: job.id,
    object: "video",
    created_at: s(job.created)!,
    completed_at: done ? s(job.finished) : null,
    expires_at: s(expires),
    status: job.status,
    progress: progressAt(job, now),
    model: job.requested,
    prompt: job.prompt,
    seconds: job.seconds,
    size: job.size,
    remixed_from_video_id: null,
    error: job.error ?? null,
    polling_url: `${base}/v1/videos/${job.id}`,
    ...(url ? { url, urls: [url] } : {}),
  };
}
