/**
 * Midjourney-style parameters written at the end of a chat prompt, for clients that cannot send
 * extra body fields: `a cat --ar 16:9 --seed 42 --neg "blurry, low quality"`. Only a tail made
 * entirely of known flags is taken; anything else stays in the prompt untouched.
 * @module
 */

/** Flag name → the request field it sets. */
export const PROMPT_FLAGS: Readonly<Record<string, string>> = {
  ar: "aspect_ratio",
  aspect: "aspect_ratio",
  size: "image_size",
  seed: "seed",
  steps: "num_inference_steps",
  cfg: "cfg",
  guidance: "guidance_scale",
  n: "n",
  neg: "negative_prompt",
  no: "negative_prompt",
};

/** A prompt with its trailing flags taken off. */
export interface ParsedPrompt {
  /** The prompt to send upstream. */
  prompt: string;
  /** Request fields set by flags. */
  fields: Record<string, string>;
}

const NAMES = Object.keys(PROMPT_FLAGS).sort((a, b) => b.length - a.length).join("|");
// A flag starts after white space or a CJK character, so "一只猫--ar 16:9" works too.
const FLAG_START = new RegExp(
  `(?:^|(?<=[\\s\\u3000-\\u9fff\\uff00-\\uffef]))--(?:${NAMES})(?=\\s)`,
  "g",
);
const ONE_FLAG = new RegExp(
  `^--(${NAMES})\\s+("[^"]*"|'[^']*'|“[^”]*”|[^\\s"'“]+)\\s*`,
);

function parseTail(tail: string): Record<string, string> | undefined {
  const fields: Record<string, string> = {};
  let rest = tail;
  while (rest) {
    const m = ONE_FLAG.exec(rest);
    if (!m) return undefined;
    let value = m[2];
    if (/^["'“]/.test(value)) value = value.slice(1, -1);
    fields[PROMPT_FLAGS[m[1]]] = value;
    rest = rest.slice(m[0].length);
  }
  return fields;
}

/** Splits trailing flags off a prompt. Later flags win over earlier ones of the same name. */
export function parsePromptFlags(text: string): ParsedPrompt {
  const trimmed = text.trimEnd();
  for (const match of trimmed.matchAll(FLAG_START)) {
    const fields = parseTail(trimmed.slice(match.index));
    if (fields) return { prompt: trimmed.slice(0, match.index).trim(), fields };
  }
  return { prompt: text, fields: {} };
}
