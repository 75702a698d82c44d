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
// One flag and its value at a given position (sticky). A quoted value scans to its closing quote
// only, so the scans of all flag starts together cover the prompt a bounded number of times.
const ONE_FLAG = new RegExp(
  `--(${NAMES})\\s+("[^"]*"|'[^']*'|“[^”]*”|[^\\s"'“]+)\\s*`,
  "y",
);

/** One parsed flag: the field it sets, its value, and where the text after it starts. */
type Step = { field: string; value: string; end: number };

/**
 * Splits trailing flags off a prompt, in time linear in its length. Later flags win over earlier
 * ones of the same name.
 *
 * A flag start begins a valid tail when its flag reaches the end of the prompt or is followed by
 * another valid tail. Every position is parsed at most once and its verdict kept, so a prompt of
 * many flags that fail near its end costs no more than one pass.
 */
export function parsePromptFlags(text: string): ParsedPrompt {
  const trimmed = text.trimEnd();
  const verdict = new Map<number, Step | null>(); // null: no valid tail from here
  const valid = (from: number): boolean => {
    const walked: number[] = [];
    let at = from;
    let ok: boolean;
    while (true) {
      if (at === trimmed.length) {
        ok = true;
        break;
      }
      const known = verdict.get(at);
      if (known !== undefined) {
        ok = known !== null;
        break;
      }
      ONE_FLAG.lastIndex = at;
      const m = ONE_FLAG.exec(trimmed);
      if (!m) {
        verdict.set(at, null);
        ok = false;
        break;
      }
      const value = /^["'“]/.test(m[2]) ? m[2].slice(1, -1) : m[2];
      verdict.set(at, { field: PROMPT_FLAGS[m[1]], value, end: ONE_FLAG.lastIndex });
      walked.push(at);
      at = ONE_FLAG.lastIndex;
    }
    if (!ok) { for (const position of walked) verdict.set(position, null); }
    return ok;
  };
  for (const match of trimmed.matchAll(FLAG_START)) {
    if (!valid(match.index)) continue;
    const fields: Record<string, string> = {};
    for (let at = match.index; at !== trimmed.length;) {
      const step = verdict.get(at)!;
      fields[step.field] = step.value;
      at = step.end;
    }
    return { prompt: trimmed.slice(0, match.index).trim(), fields };
  }
  return { prompt: text, fields: {} };
}
