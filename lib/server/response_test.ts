import { assertEquals } from "@std/assert";
import { jsonBody } from "./response.ts";

const text = async (body: string | ReadableStream<Uint8Array>) =>
  typeof body === "string" ? body : await new Response(body).text();

Deno.test("jsonBody: small values are one string", () => {
  const small = { model: "m", prompt: 'say "hi"\n', seed: 1, image: "data:image/png;base64,AAAA" };
  assertEquals(jsonBody(small), JSON.stringify(small));
});

Deno.test("jsonBody: large strings stream as exactly JSON.stringify's output", async () => {
  const emoji = "🦊".repeat(600_000); // surrogate pairs across every slice boundary
  const values: unknown[] = [
    {
      model: "Qwen/Qwen-Image-Edit-2509",
      prompt: 'merge "these" — 两张图',
      image: `data:image/png;base64,${"QUJD".repeat(400_000)}`,
      image2: "https://example.com/a.png",
      skipped: undefined,
      cfg: 4,
    },
    { created: 1, data: [{ b64_json: "A/B+".repeat(300_000) }, { b64_json: "x" }] },
    {
      choices: [{
        message: {
          content: `![seed 1](data:image/png;base64,${"Zm9v".repeat(300_000)})\n> note "quoted"`,
        },
      }],
    },
    { text: `a${emoji}b\\\n\u0001` },
    [undefined, "y".repeat(1_100_000), null],
  ];
  for (const value of values) {
    const body = jsonBody(value);
    assertEquals(typeof body === "string", false);
    assertEquals(await text(body), JSON.stringify(value));
  }
});
