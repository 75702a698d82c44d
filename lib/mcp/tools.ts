/**
 * The MCP tools: `generate_image`, `edit_image`, `generate_video`, `get_video` and
 * `list_models`. Each is a thin face on this server's own OpenAI routes, called in process with
 * the MCP request's key: the same checks, keys, quotas, limits, stored links and error words.
 * Their argument schemas are made from the model registry, so a new model's parameters appear in
 * the tools without code.
 * @module
 */
import { z } from "zod";
import { MAX_N, MAX_PROMPT_CHARS } from "../generation/plan.ts";
import { MODELS, type ParamSpec, UPSTREAM_PARAM_NAMES } from "../generation/registry.ts";
import { paramSchema } from "../generation/schemas.ts";
import { zodError } from "../generation/zod_error.ts";
import { ApiError } from "../server/errors.ts";
import { toolError, type ToolResult, type ToolRun } from "./tool_result.ts";
import { inner, listModels, makeImages, makeVideo, ToolFailure, videoResult } from "./tool_runs.ts";

export { toolError, type ToolResult, type ToolRun } from "./tool_result.ts";

const SIZE_WORDS =
  "WxH (1024x1024), a ratio (16:9), a tier (1K, 2K, 4K, alone or with a ratio: '16:9 2K') or auto; mapped to the nearest size the model takes";

/** The models' own parameters, each once, described with the models that take it. */
function modelParams(): Record<string, z.ZodType> {
  const shapes: Record<string, z.ZodType> = {};
  for (const name of UPSTREAM_PARAM_NAMES) {
    if (name === "image_size" || name === "batch_size") continue;
    const takers = MODELS.filter((m) => name in m.params && !m.video);
    if (!takers.length) continue;
    const spec: ParamSpec = takers[0].params[name];
    shapes[name] = paramSchema(spec).optional().describe(
      `Taken by ${takers.map((m) => m.id).join(", ")}; dropped (and named) for other models.`,
    );
  }
  return shapes;
}

const prompt = z.string().min(1, "prompt is required").max(MAX_PROMPT_CHARS)
  .describe("What to make, in any language.");
const imageRef = z.string().min(1).max(8_000_000).describe(
  "An http(s) URL, a data: URI, or the id or link of an image this server made earlier",
);

function imageArgs() {
  return {
    prompt,
    model: z.string().max(200).optional().describe(
      `An image model or alias (see list_models), e.g. ${
        MODELS.filter((m) => !m.video).slice(0, 3).map((m) => m.id).join(", ")
      }, gpt-image-2. Default: gpt-image-2 (Qwen-Image, or its edit model with images).`,
    ),
    size: z.string().max(40).optional().describe(SIZE_WORDS),
    n: z.number().int().min(1).max(MAX_N).optional().describe(`How many images, 1 to ${MAX_N}`),
    prompt_extend: z.boolean().optional().describe(
      "Have a chat model extend the prompt first (when the server has PROMPT_REWRITE_MODEL)",
    ),
    ...modelParams(),
  };
}

const ImagesOut = z.object({
  model: z.string(),
  images: z.array(z.object({ url: z.string(), id: z.string().optional() })),
  ignored: z.array(z.string()),
  revised_prompt: z.string().optional(),
  partial_failure: z.string().optional(),
});

const VideoOut = z.object({
  id: z.string(),
  status: z.string(),
  progress: z.number(),
  model: z.string(),
  seconds: z.string(),
  size: z.string(),
  url: z.string().optional(),
  error: z.object({ code: z.string(), message: z.string() }).nullable().optional(),
});

const ModelsOut = z.object({
  models: z.array(z.object({
    id: z.string(),
    kind: z.enum(["image", "edit", "video", "alias", "listed"]),
    owned_by: z.string(),
  })),
});

/** The tools, their argument schemas (zod) and what each runs. */
const TOOLS = {
  generate_image: {
    title: "Generate an image",
    description:
      "Make images from a prompt with SiliconFlow's image models. Answers the images, lasting links to them, and their seeds.",
    input: () => z.strictObject(imageArgs()),
    output: ImagesOut,
    run: (args: Record<string, unknown>, run: ToolRun) => makeImages(args, run, []),
  },
  edit_image: {
    title: "Edit an image",
    description:
      "Change one to three images as the prompt says (an edit model). Images may be URLs, data: URIs, or the id or link of an image this server made earlier (from generate_image or edit_image).",
    input: () =>
      z.strictObject({
        ...imageArgs(),
        images: z.array(imageRef, {
          error: "images is required: a list of one to three images (URLs, data: URIs or ids)",
        }).min(1, "images needs at least one image").max(3, "images takes at most three"),
      }),
    output: ImagesOut,
    run: (args: Record<string, unknown>, run: ToolRun) =>
      makeImages(args, run, args.images as string[]),
  },
  generate_video: {
    title: "Generate a video",
    description:
      "Make a five-second video with SiliconFlow's Wan 2.2 models, from a prompt and optionally a first frame. It takes minutes: with wait (the default) the call reports progress and answers the video; otherwise, or if it is not done in time, it answers the job's id for get_video.",
    input: () =>
      z.strictObject({
        prompt,
        model: z.string().max(200).optional().describe(
          "A video model or alias: sora-2 (default), Wan-AI/Wan2.2-T2V-A14B, Wan-AI/Wan2.2-I2V-A14B",
        ),
        size: z.string().max(40).optional().describe(
          "1280x720, 720x1280 or 960x960, or a ratio such as 16:9",
        ),
        image: imageRef.optional().describe("The first frame (makes it image to video)"),
        seed: z.number().int().min(0).max(9_999_999_999).optional(),
        negative_prompt: z.string().max(10_000).optional(),
        wait: z.boolean().optional().describe("Wait for the video (default true)"),
      }),
    output: VideoOut,
    run: makeVideo,
  },
  get_video: {
    title: "Get a video",
    description: "Where a video job stands, and once completed, the link to its MP4.",
    input: () => z.strictObject({ id: z.string().min(1).max(100) }),
    output: VideoOut,
    run: async (args: Record<string, unknown>, run: ToolRun) =>
      videoResult(await inner(run, "GET", `/v1/videos/${encodeURIComponent(String(args.id))}`)),
  },
  list_models: {
    title: "List the models",
    description: "The image, edit and video models and aliases this server serves.",
    input: () => z.strictObject({}),
    output: ModelsOut,
    run: listModels,
  },
} as const;

/** A tool's name. */
export type ToolName = keyof typeof TOOLS;

/** Whether `name` is one of the tools. */
export function isTool(name: unknown): name is ToolName {
  return typeof name === "string" && Object.hasOwn(TOOLS, name);
}

let listed: Record<string, unknown>[] | undefined;

/** `tools/list`'s tools, their schemas as JSON Schema (made once). */
export function toolList(): Record<string, unknown>[] {
  listed ??= Object.entries(TOOLS).map(([name, tool]) => ({
    name,
    title: tool.title,
    description: tool.description,
    inputSchema: z.toJSONSchema(tool.input(), { io: "input", unrepresentable: "any" }),
    outputSchema: z.toJSONSchema(tool.output, { io: "output", unrepresentable: "any" }),
    annotations: {
      title: tool.title,
      readOnlyHint: name === "get_video" || name === "list_models",
      openWorldHint: true,
    },
  }));
  return listed;
}

/** Runs a tool; a bad argument or a failure is a tool result with `isError`. */
export async function callTool(
  name: ToolName,
  args: unknown,
  run: ToolRun,
): Promise<ToolResult> {
  const tool = TOOLS[name];
  const parsed = tool.input().safeParse(args ?? {});
  if (!parsed.success) return toolError(zodError(parsed.error).message);
  try {
    return await tool.run(parsed.data as Record<string, unknown>, run);
  } catch (err) {
    // A route's refusal, a busy server, an image that is gone: said as the routes say them.
    if (err instanceof ToolFailure || (err instanceof ApiError && !run.signal.aborted)) {
      return toolError(err.message);
    }
    throw err;
  }
}
