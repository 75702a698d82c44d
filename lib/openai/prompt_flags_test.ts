import { assertEquals } from "@std/assert";
import { parsePromptFlags } from "./prompt_flags.ts";

Deno.test("prompt flags: parsed only from a tail made of known flags", () => {
  assertEquals(parsePromptFlags("a cat --ar 16:9 --seed 42"), {
    prompt: "a cat",
    fields: { aspect_ratio: "16:9", seed: "42" },
  });
  assertEquals(
    parsePromptFlags(
      'a fox --neg "blurry, low quality" --steps 30 --cfg 4 --guidance 7.5 --n 2 --size 1328x1328',
    ),
    {
      prompt: "a fox",
      fields: {
        negative_prompt: "blurry, low quality",
        num_inference_steps: "30",
        cfg: "4",
        guidance_scale: "7.5",
        n: "2",
        image_size: "1328x1328",
      },
    },
  );
  assertEquals(parsePromptFlags("一只在雪地里的猫 --ar 9:16 --neg “模糊，低质量”"), {
    prompt: "一只在雪地里的猫",
    fields: { aspect_ratio: "9:16", negative_prompt: "模糊，低质量" },
  });
  assertEquals(parsePromptFlags("一只猫--ar 16:9").fields, { aspect_ratio: "16:9" });
  for (
    const text of [
      "pros -- and cons",
      "the --ar flag is described in chapter 3",
      "a cat --ar 16:9 sitting on a mat",
      "a cat --seed",
      "a cat --chaos 50",
      "email me at a--b@example.com",
    ]
  ) {
    assertEquals(parsePromptFlags(text), { prompt: text, fields: {} }, text);
  }
  assertEquals(parsePromptFlags("a cat --seed 1 --seed 2").fields.seed, "2");
});

Deno.test("--extend is a switch: alone, last, or among other flags", () => {
  assertEquals(parsePromptFlags("a cat --extend").fields, { prompt_extend: "true" });
  assertEquals(parsePromptFlags("a cat --extend --ar 16:9"), {
    prompt: "a cat",
    fields: { prompt_extend: "true", aspect_ratio: "16:9" },
  });
  assertEquals(parsePromptFlags("a cat --ar 16:9 --extend").fields.prompt_extend, "true");
  assertEquals(parsePromptFlags("a cat --extended").fields, {});
  assertEquals(parsePromptFlags("--extend the table").prompt, "--extend the table");
});
