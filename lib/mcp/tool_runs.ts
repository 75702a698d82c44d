/**
 * What the MCP tools do: each calls one of this server's own routes in process, with the MCP
 * request's key and signal, and turns its answer into a tool result (image content, links,
 * structured content). A route's refusal is a {@link ToolFailure}, said in the result.
 * @module
 */
import { MODELS } from "../generation/registry.ts";
import { isJsonObject } from "../values.ts";
import type { RequestContext } from "../openai/context.ts";
import {
  answeredImage,
  inlineOwnImages,
  publicBase,
  storedImageLink,
} from "../openai/stored_images.ts";
import { MAX_INLINE_IMAGE_BYTES, toolError, type ToolResult, type ToolRun } from "./tool_result.ts";
import { decodePng, encodePng, shrink } from "../png.ts";

/** A route's error, in its own words (with the names of the tool's arguments). */
export class ToolFailure extends Error {}

/**
 * A route's error in the tool's words: `generate_video`'s first frame, `image`, goes to the
 * Videos API as `input_reference`. (`edit_image`'s `images` go to the Images API as they are.)
 */
function argNames(message: string): string {
  return message.replace(/\binput_reference\b/g, "image");
}

/** Calls one of this server's routes in process, with the MCP request's key and signal. */
export async function inner(
  run: ToolRun,
  method: string,
  path: string,
  body?: Record<string, unknown>,
): Promise<{ json: Record<string, unknown>; headers: Headers }> {
  const { ctx } = run;
  const headers = new Headers({ "content-type": "application/json" });
  for (const name of ["authorization", "x-forwarded-host", "x-forwarded-proto"]) {
    const value = ctx.request.headers.get(name);
    if (value) headers.set(name, value);
  }
  const response = await ctx.app.dispatch(
    new Request(new URL(path, ctx.url.origin), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: run.signal,
    }),
  );
  const json = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = isJsonObject(json) && isJsonObject(json.error) ? json.error : {};
    throw new ToolFailure(argNames(String(error.message ?? `HTTP ${response.status}`)));
  }
  return { json, headers: response.headers };
}

/** A tool's own image references as links: an id of a stored image becomes its link. */
function imageLinks(ctx: RequestContext, images: string[]): string[] {
  return images.map((ref) =>
    /^[\w-]{22}(\.\w{3,4})?$/.test(ref)
      ? `${publicBase(ctx)}/images/${ref.includes(".") ? ref : `${ref}.png`}`
      : ref
  );
}

/** Reports the seconds so far every few seconds until the work ends. */
function ticking(run: ToolRun, what: string): () => void {
  const started = Date.now();
  let last = 0;
  const timer = setInterval(() => {
    const s = Math.max(last + 1, Math.round((Date.now() - started) / 1000));
    last = s;
    run.progress(s, `${what}… ${s} s`);
  }, 5_000);
  return () => clearInterval(timer);
}

/** `generate_image` and `edit_image`: the Images API, then the images as content and links. */
export async function makeImages(
  args: Record<string, unknown>,
  run: ToolRun,
  refs: string[],
): Promise<ToolResult> {
  const { ctx } = run;
  const { images: _images, ...fields } = args;
  const model = (args.model as string | undefined) ?? "gpt-image-2";
  run.progress(0, `Asking ${model}…`);
  const stop = ticking(run, "Generating");
  let answer: Awaited<ReturnType<typeof inner>>;
  try {
    if (refs.length) {
      const inlined = await inlineOwnImages(ctx, imageLinks(ctx, refs), "images");
      answer = await inner(run, "POST", "/v1/images/edits", {
        ...fields,
        model,
        response_format: "url",
        images: inlined,
      });
    } else {
      answer = await inner(run, "POST", "/v1/images/generations", {
        ...fields,
        model,
        response_format: "url",
      });
    }
  } finally {
    stop();
  }
  const data = (answer.json.data ?? []) as { url: string; revised_prompt?: string }[];
  const ignored = answer.headers.get("x-ignored-params")?.split(", ") ?? [];
  const content: Record<string, unknown>[] = [];
  const images = [];
  for (const [i, { url }] of data.entries()) {
    const id = storedImageLink(url)?.name;
    images.push(id ? { url, id } : { url });
    const { base64, contentType } = await answeredImage(ctx, url, run.signal, "images");
    content.push(...await shown(base64, contentType, i));
    content.push({
      type: "resource_link",
      uri: url,
      name: `image-${i + 1}.${contentType.replace(/^image\//, "")}`,
      mimeType: contentType,
      description: id ? `Image ${id}, kept on this server` : "SiliconFlow's link (about an hour)",
    });
  }
  const revised = data[0]?.revised_prompt;
  const partial = (answer.json.partial_failure as { message?: string } | undefined)?.message;
  const lines = [`Made ${data.length} image${data.length === 1 ? "" : "s"} with ${model}.`];
  if (revised) lines.push(`Prompt extended: ${revised}`);
  if (ignored.length) lines.push(`Ignored (the model does not take them): ${ignored.join(", ")}.`);
  if (partial) lines.push(partial);
  content.unshift({ type: "text", text: lines.join("\n") });
  return {
    content,
    structuredContent: {
      model,
      images,
      ignored,
      ...(revised ? { revised_prompt: revised } : {}),
      ...(partial ? { partial_failure: partial } : {}),
    },
  };
}

/** The longest side of an image shown scaled down: even noise fits in a megabyte (512² × 3). */
const THUMBNAIL_SIDE = 512;
/** The largest image (in pixels) decoded to make a thumbnail: 40 megapixels. */
const MAX_DECODED_PIXELS = 40_000_000;

/**
 * An image as result content: itself up to {@link MAX_INLINE_IMAGE_BYTES}; a larger PNG scaled
 * down to {@link THUMBNAIL_SIDE} (a chat model is not fed megabytes); any other, a line that says
 * so (its link follows).
 */
async function shown(base64: string, type: string, index: number) {
  const bytes = Uint8Array.fromBase64(base64);
  if (bytes.length <= MAX_INLINE_IMAGE_BYTES) {
    return [{ type: "image", data: base64, mimeType: type }];
  }
  const decoded = type === "image/png" ? await decodePng(bytes, MAX_DECODED_PIXELS) : undefined;
  const small = decoded ? await encodePng(shrink(decoded, THUMBNAIL_SIDE)) : undefined;
  const mb = (bytes.length / 1048576).toFixed(1);
  if (!small || small.length > MAX_INLINE_IMAGE_BYTES) {
    return [{
      type: "text",
      text: `Image ${index + 1} is ${mb} MB, too large to show here: open its link.`,
    }];
  }
  const note = `Image ${index + 1} (${decoded!.width}x${
    decoded!.height
  }, ${mb} MB) is shown scaled down; its link has it whole.`;
  return [
    { type: "text", text: note },
    { type: "image", data: small.toBase64(), mimeType: "image/png" },
  ];
}

/** A video object as a tool result: its state, and once completed the link to the MP4. */
export function videoResult(
  answer: { json: Record<string, unknown>; headers: Headers },
): ToolResult {
  const video = answer.json;
  const out = {
    id: String(video.id),
    status: String(video.status),
    progress: Number(video.progress ?? 0),
    model: String(video.model),
    seconds: String(video.seconds),
    size: String(video.size),
    ...(typeof video.url === "string" ? { url: video.url } : {}),
    error: (video.error ?? null) as { code: string; message: string } | null,
  };
  const content: Record<string, unknown>[] = [];
  if (out.status === "completed" && out.url) {
    content.push({ type: "text", text: `The video is ready: ${out.url}` });
    content.push({
      type: "resource_link",
      uri: out.url,
      name: `${out.id}.mp4`,
      mimeType: "video/mp4",
    });
  } else if (out.status === "failed") {
    return {
      ...toolError(`The video failed: ${out.error?.message ?? "no reason given"}`),
      structuredContent: out,
    };
  } else {
    content.push({
      type: "text",
      text:
        `The video ${out.id} is ${out.status} (${out.progress}%). Call get_video with this id to collect it.`,
    });
  }
  return { content, structuredContent: out };
}

/** `generate_video`: a job, then (with `wait`) its progress until it ends or time runs out. */
export async function makeVideo(args: Record<string, unknown>, run: ToolRun): Promise<ToolResult> {
  const { ctx } = run;
  const { image, wait, ...fields } = args;
  const [frame] = image
    ? await inlineOwnImages(ctx, imageLinks(ctx, [String(image)]), "image")
    : [];
  const created = await inner(run, "POST", "/v1/videos", {
    ...fields,
    model: args.model ?? "sora-2",
    ...(frame ? { input_reference: frame } : {}),
  });
  const id = String(created.json.id);
  if (wait === false) return videoResult(created);
  const { videos, config, now } = ctx.app;
  const job = await videos.jobs.get(id);
  if (!job) return videoResult(created);
  const release = videos.waits.acquire();
  let last = -1;
  try {
    await videos.waitFor(job, now() + config.upstreamTimeoutMs, run.signal, (seen) => {
      if (seen.progress > last) {
        last = seen.progress;
        run.progress(seen.progress, `Video ${seen.status}`, 100);
      }
    });
  } finally {
    release();
  }
  return videoResult(await inner(run, "GET", `/v1/videos/${id}`));
}

/** `list_models`: the models and aliases `/v1/models` lists, with what kind each is. */
export async function listModels(
  _args: Record<string, unknown>,
  run: ToolRun,
): Promise<ToolResult> {
  const { json } = await inner(run, "GET", "/v1/models");
  const kinds = new Map(
    MODELS.map((m) => [m.id, m.video ? "video" : m.inputImages.min > 0 ? "edit" : "image"]),
  );
  const models = ((json.data ?? []) as { id: string; owned_by: string }[]).map((m) => ({
    id: m.id,
    kind: kinds.get(m.id) ?? (m.owned_by === "alias" ? "alias" : "listed"),
    owned_by: m.owned_by,
  }));
  return {
    content: [{
      type: "text",
      text: models.map((m) => `${m.id} (${m.kind})`).join("\n"),
    }],
    structuredContent: { models },
  };
}
