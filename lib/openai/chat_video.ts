/**
 * A video model in chat (and the Responses API): the conversation's prompt (and its image, for an
 * image-to-video model) becomes a video job, the answer waits for it (streamed, with keep-alives
 * and, with progress on, its place in the queue; non-streamed, up to `UPSTREAM_TIMEOUT_MS`), and
 * says where the MP4 is, or how to collect it later.
 * @module
 */
import type { GenerationPlan } from "../generation/plan.ts";
import type { ModelSpec } from "../generation/registry.ts";
import { ApiError } from "../server/errors.ts";
import { isDone, progressAt, type VideoJob } from "../store/video_jobs.ts";
import type { RequestAuth, RequestContext } from "./context.ts";
import type { PreparedGeneration } from "./conversation.ts";
import { publicBase } from "./stored_images.ts";
import { createVideoJob } from "./videos.ts";

/** How often a waiting chat reads its job's record. */
const WAIT_STEP_MS = 1_000;

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

/** Waits for a job to end, up to `until` (ms) or until `signal` aborts; answers its last record. */
async function waitFor(
  ctx: RequestContext,
  job: VideoJob,
  until: number,
  signal: AbortSignal,
  seen: (job: VideoJob) => void,
): Promise<VideoJob> {
  let latest = job;
  while (!isDone(latest)) {
    if (signal.aborted || ctx.app.now() >= until) break;
    await new Promise((resolve) => setTimeout(resolve, WAIT_STEP_MS));
    latest = (await ctx.app.videos.jobs.get(job.id)) ?? latest;
    seen(latest);
  }
  return latest;
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
    fields: Record<string, unknown>;
    stream: boolean;
    progress: boolean;
  },
): PreparedGeneration {
  const { model } = input;
  const plan: GenerationPlan = { model, calls: [], n: 1, ignored: [] };
  let latest: VideoJob | undefined;
  return {
    plan,
    progress: input.progress,
    status: () => (latest ? state(latest, ctx.app.now()) : ""),
    async run(signal) {
      const { job, ignored } = await createVideoJob(ctx, auth, {
        fields: input.fields,
        prompt: input.prompt,
        model: input.requested,
        image: input.images[0],
      });
      latest = job;
      const until = input.stream ? job.deadline : job.created + ctx.app.config.upstreamTimeoutMs;
      const end = await waitFor(ctx, job, until, signal, (seen) => (latest = seen));
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
