import { assertEquals, assertThrows } from "@std/assert";
import { ApiError } from "../server/errors.ts";
import { type GenerationInput, planGeneration } from "./plan.ts";
import { findModel, genericModel, MODELS } from "./registry.ts";
import { nearestSize, parseAspectRatio, resolveImageSize } from "./sizes.ts";

/** A tiny valid PNG as a data URI. */
const PNG_DATA_URI =
  "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

const model = (id: string) => findModel(id)!;
const input = (id: string, fields: Record<string, unknown> = {}, images: string[] = []) =>
  ({
    model: model(id),
    prompt: "a cat",
    images,
    fields,
    imagesParam: "messages[0].content",
    promptParam: "messages[0].content",
  }) satisfies GenerationInput;

function rejects(i: GenerationInput, param: string) {
  const err = assertThrows(() => planGeneration(i), ApiError);
  assertEquals([err.status, err.param], [400, param], err.message);
  return err;
}

Deno.test("every registry entry builds a schema and has sane sizes", () => {
  for (const m of MODELS) {
    const plan = planGeneration({
      ...input(m.id),
      images: Array(m.inputImages.min).fill(PNG_DATA_URI),
    });
    assertEquals(plan.calls.length, 1);
    if ("image_size" in m.params) assertEquals(plan.calls[0].image_size, m.sizes[0]);
  }
});

Deno.test("Kolors: batch_size 1-4, guidance_scale 0-20, 0-1 images", () => {
  const plan = planGeneration(input("Kwai-Kolors/Kolors", { batch_size: 2, guidance_scale: 7.5 }));
  assertEquals(plan.calls[0], {
    model: "Kwai-Kolors/Kolors",
    prompt: "a cat",
    batch_size: 2,
    guidance_scale: 7.5,
    image_size: "1024x1024",
  });
  rejects(input("Kwai-Kolors/Kolors", { batch_size: 5 }), "batch_size");
  rejects(input("Kwai-Kolors/Kolors", { guidance_scale: 20.5 }), "guidance_scale");
  assertEquals(planGeneration(input("Kwai-Kolors/Kolors", { cfg: 4 })).calls[0].guidance_scale, 4);
  // A field the model does not take is dropped and reported; with STRICT_PARAMS it is a 400.
  const lenient = planGeneration(input("Kwai-Kolors/Kolors", { prompt_enhancement: true }));
  assertEquals([lenient.ignored, "prompt_enhancement" in lenient.calls[0]], [
    ["prompt_enhancement"],
    false,
  ]);
  rejects(
    { ...input("Kwai-Kolors/Kolors", { prompt_enhancement: true }), strict: true },
    "prompt_enhancement",
  );
  assertEquals(
    planGeneration(input("Kwai-Kolors/Kolors", {}, [PNG_DATA_URI])).calls[0].image,
    PNG_DATA_URI,
  );
  rejects(input("Kwai-Kolors/Kolors", {}, [PNG_DATA_URI, PNG_DATA_URI]), "messages[0].content");
});

Deno.test("Qwen-Image: no images, cfg 0.1-20, seed and steps ranges", () => {
  rejects(input("Qwen/Qwen-Image", {}, [PNG_DATA_URI]), "messages[0].content");
  rejects(input("Qwen/Qwen-Image", { cfg: 0 }), "cfg");
  assertEquals(planGeneration(input("Qwen/Qwen-Image", { guidance_scale: 3 })).calls[0].cfg, 3);
  assertEquals(
    planGeneration(input("Qwen/Qwen-Image", { guidance_scale: 3, cfg: 5 })).calls[0].cfg,
    5,
  );
  rejects(input("Qwen/Qwen-Image", { guidance_scale: 0 }), "guidance_scale");
  // batch_size on a one-image model means n; with STRICT_PARAMS it is a 400.
  const batched = planGeneration(input("Qwen/Qwen-Image", { batch_size: 2, seed: 5 }));
  assertEquals(batched.calls.map((c) => [c.seed, "batch_size" in c]), [[5, false], [6, false]]);
  assertEquals(batched.ignored, []);
  rejects(input("Qwen/Qwen-Image", { batch_size: 5 }), "batch_size");
  rejects({ ...input("Qwen/Qwen-Image", { batch_size: 2 }), strict: true }, "batch_size");
  rejects(input("Qwen/Qwen-Image", { seed: 10_000_000_000 }), "seed");
  rejects(input("Qwen/Qwen-Image", { seed: -1 }), "seed");
  rejects(input("Qwen/Qwen-Image", { seed: 1.5 }), "seed");
  rejects(input("Qwen/Qwen-Image", { num_inference_steps: 101 }), "num_inference_steps");
  rejects(input("Qwen/Qwen-Image", { num_inference_steps: 0 }), "num_inference_steps");
  rejects(input("Qwen/Qwen-Image", { negative_prompt: 5 }), "negative_prompt");
  rejects(input("Qwen/Qwen-Image", { image_size: "big" }), "image_size");
  rejects(input("Qwen/Qwen-Image", { image_size: "10x10" }), "image_size");
  const ok = planGeneration(input("Qwen/Qwen-Image", {
    seed: 9_999_999_999,
    num_inference_steps: "50",
    cfg: "4.0",
    image_size: "1664x928",
    temperature: 0.7,
    max_tokens: 100,
  }));
  assertEquals(ok.calls[0], {
    model: "Qwen/Qwen-Image",
    prompt: "a cat",
    seed: 9_999_999_999,
    num_inference_steps: 50,
    cfg: 4,
    image_size: "1664x928",
  });
});

Deno.test("edit models: image counts, and image_size is never sent", () => {
  rejects(input("Qwen/Qwen-Image-Edit"), "messages[0].content");
  rejects(input("Qwen/Qwen-Image-Edit", {}, [PNG_DATA_URI, PNG_DATA_URI]), "messages[0].content");
  const edit = planGeneration(
    input("Qwen/Qwen-Image-Edit", { image_size: "1024x1024" }, [PNG_DATA_URI]),
  );
  assertEquals(edit.calls[0], {
    model: "Qwen/Qwen-Image-Edit",
    prompt: "a cat",
    image: PNG_DATA_URI,
  });
  const three = planGeneration(
    input("Qwen/Qwen-Image-Edit-2509", { cfg: 4 }, [
      "https://a/1.png",
      "https://a/2.png",
      "https://a/3.png",
    ]),
  );
  assertEquals(
    [three.calls[0].image, three.calls[0].image2, three.calls[0].image3],
    ["https://a/1.png", "https://a/2.png", "https://a/3.png"],
  );
  rejects(
    input("Qwen/Qwen-Image-Edit-2509", {}, Array(4).fill(PNG_DATA_URI)),
    "messages[0].content",
  );
});

Deno.test("n becomes batch_size on Kolors and seeded concurrent calls elsewhere", () => {
  assertEquals(planGeneration(input("Kwai-Kolors/Kolors", { n: 3 })).calls[0].batch_size, 3);
  const qwen = planGeneration(input("Qwen/Qwen-Image", { n: 3, seed: 9_999_999_999 }));
  assertEquals(qwen.calls.map((c) => c.seed), [9_999_999_999, 0, 1]);
  assertEquals(planGeneration(input("Qwen/Qwen-Image", { n: 2 })).calls.length, 2);
  rejects(input("Qwen/Qwen-Image", { n: 5 }), "n");
  rejects(input("Qwen/Qwen-Image", { n: 0 }), "n");
  rejects(input("Qwen/Qwen-Image", { n: "two" }), "n");
});

Deno.test("an empty prompt is refused", () => {
  rejects({ ...input("Qwen/Qwen-Image"), prompt: "  \n" }, "messages[0].content");
});

Deno.test("size mapping: recommended sizes pass, OpenAI sizes map by aspect ratio", () => {
  const qwen = model("Qwen/Qwen-Image");
  const kolors = model("Kwai-Kolors/Kolors");
  assertEquals(resolveImageSize(qwen, { size: "1664x928" }), "1664x928");
  assertEquals(resolveImageSize(qwen, { size: "1024x1024" }), "1328x1328");
  assertEquals(resolveImageSize(qwen, { size: "1792x1024" }), "1664x928");
  assertEquals(resolveImageSize(qwen, { size: "1024x1792" }), "928x1664");
  assertEquals(resolveImageSize(qwen, { size: "1536x1024" }), "1584x1056");
  assertEquals(resolveImageSize(qwen, { size: "1024x1536" }), "1056x1584");
  assertEquals(resolveImageSize(qwen, { size: "auto" }), "1328x1328");
  assertEquals(resolveImageSize(kolors, { size: "512x512" }), "1024x1024");
  assertEquals(resolveImageSize(kolors, { size: "1024x1792" }), "720x1280");
  assertEquals(resolveImageSize(qwen, { size: "800x600" }), "800x600");
  assertEquals(resolveImageSize(qwen, { size: "1024x1024", imageSize: "928x1664" }), "928x1664");
  assertEquals(resolveImageSize(qwen, { aspectRatio: "16:9", size: "1024x1024" }), "1664x928");
  assertEquals(resolveImageSize(model("Qwen/Qwen-Image-Edit"), { size: "1024x1024" }), undefined);
  assertEquals(nearestSize(qwen, 4 / 3), "1472x1140");
  assertEquals(parseAspectRatio("21:9")! > 2, true);
  assertEquals(parseAspectRatio("wide"), undefined);
  assertThrows(() => resolveImageSize(qwen, { size: "huge" }), ApiError);
  assertThrows(() => resolveImageSize(qwen, { aspectRatio: "0:1" }), ApiError);
});

Deno.test("size vocabulary: ratios, tiers, enums and free sizes", () => {
  const qwen = model("Qwen/Qwen-Image");
  const flux = model("black-forest-labs/FLUX.2-pro");
  const wan = model("Wan-AI/Wan2.2-T2V-A14B");
  const size = (m: typeof qwen, req: Parameters<typeof resolveImageSize>[1]) =>
    resolveImageSize(m, req);
  assertEquals(size(qwen, { size: "16:9" }), "1664x928");
  assertEquals(size(qwen, { size: "4:3" }), "1472x1140");
  assertEquals(size(qwen, { size: "1K" }), "1328x1328");
  assertEquals(size(qwen, { size: "2k" }), "2048x2048");
  assertEquals(size(qwen, { size: "16:9 2K" }), "2736x1536");
  assertEquals(size(qwen, { size: "4K, 16:9" }), "4096x2304");
  assertEquals(size(qwen, { imageSize: "2K", aspectRatio: "9:16" }), "1536x2736");
  assertEquals(size(qwen, { size: "4K" }), "4096x4096");
  assertEquals(size(qwen, { aspectRatio: "3:2", size: "1024x1024" }), "1584x1056");
  // A fixed set of sizes: the nearest in ratio, whatever the tier or pixel count.
  assertEquals(size(flux, { size: "4K" }), "512x512");
  assertEquals(size(flux, { size: "800x600" }), "1024x768");
  assertEquals(size(flux, { size: "16:9 2K" }), "1024x576");
  assertEquals(size(wan, { size: "9:16" }), "720x1280");
  assertEquals(size(wan, { size: "1792x1024" }), "1280x720");
  // A model with no recommended table: a megapixel at the ratio.
  const generic = genericModel({ id: "acme/Painter", subType: "text-to-image" });
  assertEquals(size(generic, { size: "16:9" }), "1360x768");
  assertEquals(size(generic, {}), undefined);
  for (const bad of ["huge", "2K 99:1", "16:9 4:3", "2K 4K", "16:9 big", " "]) {
    assertThrows(() => size(qwen, { size: bad }), ApiError, "size must be", bad);
  }
  assertThrows(() => size(qwen, { imageSize: "3K" }), ApiError, "image_size must be");
});

Deno.test("quality xhigh and max are more steps where a model has them, else named", () => {
  const steps = (id: string, fields: Record<string, unknown>) => {
    const plan = planGeneration(input(id, fields));
    return [plan.calls[0].num_inference_steps, plan.ignored];
  };
  assertEquals(steps("Qwen/Qwen-Image", { quality: "xhigh" }), [40, []]);
  assertEquals(steps("Qwen/Qwen-Image", { quality: "MAX" }), [50, []]);
  assertEquals(steps("Qwen/Qwen-Image", { quality: "max", num_inference_steps: 12 }), [12, []]);
  assertEquals(steps("Qwen/Qwen-Image", { quality: "high" }), [undefined, []]);
  assertEquals(steps("black-forest-labs/FLUX.2-pro", { quality: "xhigh" }), [undefined, [
    "quality",
  ]]);
});

Deno.test("an unverified model drops what it does not take, even with strict params", () => {
  const plan = planGeneration({
    ...input("baidu/ERNIE-Image-Turbo", { num_inference_steps: 8, cfg: 3 }),
    strict: true,
  });
  assertEquals(plan.ignored, ["num_inference_steps", "cfg"]);
  rejects({ ...input("Qwen/Qwen-Image", { batch_size: 2 }), strict: true }, "batch_size");
});
