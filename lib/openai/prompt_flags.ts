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

/** Flags without a value → the request field they set to `true`. */
export const PROMPT_SWITCHES: Readonly<Record<string, string>> = {
  extend: "prompt_extend",
};

/** A prompt with its trailing flags taken off. */
export interface ParsedPrompt {
  /** The prompt to send upstream. */
  prompt: string;
  /** Request fields set by flags. */
  fields: Record<string, string>;
}

const NAMES = Object.keys(PROMPT_FLAGS).sort((a, b) => b.length - a.length).join("|");
const SWITCHES = Object.keys(PROMPT_SWITCHES).join("|");
// A flag starts after white space or a CJK character, so "一只猫--ar 16:9" works too.
const FLAG_START = new RegExp(
  `(?:^|(?<=[\\s\\u3000-\\u9fff\\uff00-\\uffef]))--(?:(?:${NAMES})(?=\\s)|(?:${SWITCHES})(?=\\s|$))`,
  "g",
);
// One flag and its value (or a switch) at a given position (sticky). A quoted value scans to its
// closing quote only, so the scans of all flag starts together cover the prompt a bounded number
// of times.
const ONE_FLAG = new RegExp(
  `--(?:(${NAMES})\\s+("[^"]*"|'[^']*'|“[^”]*”|[^\\s"'“]+)|(${SWITCHES})(?=\\s|$))\\s*`,
  "y",
);

/** The flag at `at` (sticky match), with the field it sets, its value, and where it ends. */
function flagAt(text: string, at: number): { field: string; value: string; end: number } | null {
  ONE_FLAG.lastIndex = at;
  const m = ONE_FLAG.exec(text);
  if (!m) return null;
  if (m[3]) return { field: PROMPT_SWITCHES[m[3]], value: "true", end: ONE_FLAG.lastIndex };
  const value = /^["'“]/.test(m[2]) ? m[2].slice(1, -1) : m[2];
  return { field: PROMPT_FLAGS[m[1]], value, end: ONE_FLAG.lastIndex };
}

const UNKNOWN = 0, VALID = 1, INVALID = 2;

/**
 * Splits trailing flags off a prompt, in time linear in its length. Later flags win over earlier
 * ones of the same name.
 *
 * A position begins a valid tail when the flag there reaches the end of the prompt or is followed
 * by another valid tail. Every position is parsed at most once and its verdict kept, so a prompt
 * of many flags that fail near its end costs no more than one pass.
 */
export function parsePromptFlags(text: string): ParsedPrompt {
  // Nearly every prompt has no flag at all: no tables, no scan.
  if (!text.includes("--")) return { prompt: text, fields: {} };
  const trimmed = text.trimEnd();
  const verdict = new Uint8Array(trimmed.length + 1);
  verdict[trimmed.length] = VALID;
  const next = new Int32Array(trimmed.length + 1);
  const valid = (from: number): boolean => {
    const walked: number[] = [];
    let at = from;
    while (verdict[at] === UNKNOWN) {
      const flag = flagAt(trimmed, at);
      if (!flag) {
        verdict[at] = INVALID;
        break;
      }
      walked.push(at);
      next[at] = flag.end;
      at = flag.end;
    }
    const result = verdict[at];
    for (const position of walked) verdict[position] = result;
    return result === VALID;
  };
  for (const match of trimmed.matchAll(FLAG_START)) {
    if (!valid(match.index)) continue;
    const fields: Record<string, string> = {};
    for (let at = match.index; at !== trimmed.length; at = next[at]) {
      const flag = flagAt(trimmed, at)!;
      fields[flag.field] = flag.value;
    }
    return { prompt: trimmed.slice(0, match.index).trim(), fields };
  }
  return { prompt: text, fields: {} };
}
