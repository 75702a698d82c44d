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
import { isJsonObject } from "../server/values.ts";
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
}

function checked(fields: Record<string, unknown>, image?: string): VideoRequest {
  const parsed = Body.safeParse(fields);
  if (!parsed.success) throw zodError(parsed.error);
  return {
    fields,
    prompt: parsed.data.prompt,
    model: parsed.data.model || DEFAULT_VIDEO_MODEL,
    image,
  };
}

/** A JSON body; `input_reference` is a URL or data URI, or `{image_url}` (a string or `{url}`). */
export function parseVideoJson(fields: Record<string, unknown>): VideoRequest {
  let ref = fields.input_reference;
  if (isJsonObject(ref)) ref = ref.image_url ?? ref.url;
  if (isJsonObject(ref)) ref = ref.url;
  const image = ref === undefined || ref === null || ref === ""
    ? undefined
    : checkImageRef(ref, "input_reference");
  return checked(fields, image);
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
}

/** A job as OpenAI's video object at `now`; `keptDays` is how long a stored copy lasts. */
export function videoObject(
  job: VideoJob,
  keptDays: number | undefined,
  now: number,
): VideoObject {
  const s = (ms: number | undefined) => (ms === undefined ? null : Math.floor(ms / 1000));
  const done = job.status === "completed";
  const expires = !done
    ? undefined
    : job.stored
    ? (keptDays === undefined ? undefined : (job.finished ?? job.created) + keptDays * 86_400_000)
    : job.urlExpires;
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
  };
}
