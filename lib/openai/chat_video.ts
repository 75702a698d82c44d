/**
 * A video model in chat (and the Responses API): the conversation's prompt (and its image, for an
 * image-to-video model) becomes a video job, the answer waits for it (streamed, with keep-alives
 * and, with progress on, its place in the queue; non-streamed, up to `UPSTREAM_TIMEOUT_MS`), and
 * says where the MP4 is, or how to collect it later. The wait takes one of the video waits, not an
 * image slot, and hears the job's changes from the poller.
 * @module
 */
import type { ModelSpec } from "../generation/registry.ts";
import { progressAt, type VideoJob } from "../jobs/video.ts";
import { ApiError } from "../server/errors.ts";
import type { RequestAuth } from "./auth.ts";
import type { RequestContext } from "./context.ts";
import type { PreparedGeneration } from "./prepared.ts";
import { publicBase } from "./stored_images.ts";
import { createVideoJob } from "./videos.ts";

/** Where a finished job's MP4 is: the stored copy, or SiliconFlow's 10-minute link. */
export function videoLink(ctx: RequestContext, job: VideoJob): string | undefined {
  return job.stored ? `${publicBase(ctx)}/videos/${job.stored}` : job.url;
}

function state(job: VideoJob, now: number): string {
  return job.status === "queued"
    ? ` (queued${job.position ? `, position ${job.position}` : ""})`
    : job.status === "in_progress"
    ? ` (rendering, about ${progressAt(job, now)}%)`
    : "";
}

/** The chat answer of a finished (or still running) job. */
function markdown(ctx: RequestContext, job: VideoJob, ignored: string[]): string {
  const collect = `GET /v1/videos/${job.id}/content`;
  const notes = ignored.length
    ? `\n\nIgnored ${ignored.join(", ")}: ${job.model} does not take them.`
    : "";
  if (job.status === "completed") {
    const link = videoLink(ctx, job)!;
    const lasts = job.stored ? "" : " The link is SiliconFlow's and works for 10 minutes.";
    return `[▶ Video (${job.seconds} s, ${job.size})](${link})\n\nVideo id: \`${job.id}\`.${lasts}${notes}`;
  }
  return `The video is still rendering${
    state(job, ctx.app.now())
  }. Its id is \`${job.id}\`: collect it later with ${collect} (or GET /v1/videos/${job.id} for its status).${notes}`;
}

/** A conversation's video, ready to run as chat runs a generation. */
export function prepareVideo(
  ctx: RequestContext,
  auth: RequestAuth,
  input: {
    model: ModelSpec;
    requested: string;
    prompt: string;
    images: string[];
    imagesParam: string;
    fields: Record<string, unknown>;
    stream: boolean;
    progress: boolean;
  },
): PreparedGeneration {
  let latest: VideoJob | undefined;
  const videos = ctx.app.videos;
  return {
    progress: input.progress,
    intro: `Making a video with ${input.model.id}…\n`,
    headers: {},
    acquire: () => videos.waits.acquire(),
    status: () => (latest ? state(latest, ctx.app.now()) : ""),
    async run(signal) {
      const { job, ignored } = await createVideoJob(ctx, auth, {
        fields: input.fields,
        prompt: input.prompt,
        model: input.requested,
        image: input.images[0],
        imagesParam: input.imagesParam,
        promptParam: input.imagesParam,
      });
      latest = job;
      const until = input.stream ? job.deadline : job.created + ctx.app.config.upstreamTimeoutMs;
      const end = await videos.waitFor(job, until, signal, (seen) => (latest = seen));
      if (end.status === "failed") {
        throw new ApiError(502, end.error?.message ?? "The video failed", { code: "video_failed" });
      }
      return {
        outcome: { images: [], failures: [], traceIds: [] },
        markdown: markdown(ctx, end, ignored),
      };
    },
  };
}
