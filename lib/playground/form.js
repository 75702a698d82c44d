// @ts-check
/// <reference lib="dom" />
/**
 * The playground's form: the fields built from a model's JSON Schema, the values they hold, and
 * the settings kept in the browser for the next visit.
 */
import { $, $$, el, showThumbs, state } from "./app.js";

export const RATIOS = [[1, 1], [4, 3], [3, 4], [3, 2], [2, 3], [16, 9], [9, 16], [21, 9], [9, 21], [
  2,
  1,
], [1, 2]];

/** The common aspect ratio nearest to a size, e.g. 16:9 for 1664×928. */
export function ratioName(w, h) {
  let best = RATIOS[0];
  for (const r of RATIOS) {
    if (
      Math.abs(Math.log((w / h) / (r[0] / r[1]))) <
        Math.abs(Math.log((w / h) / (best[0] / best[1])))
    ) best = r;
  }
  return best[0] + ":" + best[1];
}

export const SKIP = new Set(["image_size", "seed", "negative_prompt", "batch_size"]);

export function buildForm() {
  const m = state.model;
  const props = m.parameters?.properties ?? {};
  // Aspect ratios from the model's recommended sizes.
  const sizes = m.sizes ?? [];
  $("#sizes").replaceChildren(...sizes.map((size, i) => {
    const [w, h] = size.split("x").map(Number);
    const id = "size-" + i;
    const input = el("input", { type: "radio", name: "size", value: size, id, checked: i === 0 });
    const text = ratioName(w, h) + " (" + w + "×" + h + ")";
    return el(
      "span",
      { className: "size" },
      input,
      el("label", { htmlFor: id, textContent: text }),
    );
  }));
  $("#sizes-field").hidden = sizes.length === 0;
  $("#negative-field").hidden = !("negative_prompt" in props);
  const extra = Object.entries(props).filter(([name]) => !SKIP.has(name));
  $("#params").replaceChildren(...extra.map(([name, schema]) => field(name, schema)));
  const max = m.input_images?.max ?? 0;
  $("#images-field").hidden = max === 0;
  $("#images-hint").textContent = max
    ? "Up to " + max + " image" + (max > 1 ? "s" : "") +
      (m.input_images.min ? " (required)" : "")
    : "";
  state.images = state.images.slice(0, max);
  showThumbs();
  // A video model makes one video of a fixed length: no image count.
  $("#n").closest(".field").hidden = Boolean(m.video);
  $("#images-field label").textContent = m.video ? "First frame" : "Input images";
  document.body.dataset.model = m.id;
}

export function field(name, schema) {
  const id = "p-" + name;
  const label = el("label", { htmlFor: id, textContent: name.replaceAll("_", " ") });
  let input;
  if (schema.enum) {
    input = el(
      "select",
      { id },
      el("option", { value: "", textContent: "default" }),
      ...schema.enum.map((v) => el("option", { value: v, textContent: v })),
    );
  } else if (schema.type === "boolean") {
    input = el("input", { id, type: "checkbox" });
  } else if (schema.type === "integer" || schema.type === "number") {
    input = el("input", {
      id,
      type: "number",
      placeholder: "default",
      min: schema.minimum ?? "",
      max: schema.maximum ?? "",
      step: schema.type === "integer" ? 1 : "any",
    });
  } else {
    input = el("input", { id, type: "text", placeholder: "default" });
  }
  input.dataset.param = name;
  input.dataset.kind = schema.type ?? "string";
  const range = schema.minimum !== undefined
    ? " (" + schema.minimum + "–" + schema.maximum + ")"
    : "";
  return el("div", { className: "field" }, label, input, el("small", { textContent: range }));
}

export function params() {
  const out = {};
  for (const input of $$("[data-param]")) {
    const kind = input.dataset.kind;
    if (input.type === "checkbox") {
      if (input.checked) out[input.dataset.param] = true;
      continue;
    }
    if (input.value === "") continue;
    out[input.dataset.param] = kind === "integer" || kind === "number"
      ? Number(input.value)
      : input.value;
  }
  return out;
}

// The form's settings (not the key, which has its own checkbox) are kept for the next visit.
export const SETTINGS = "playground-settings";

export function saveSettings(request) {
  const { model, prompt, size, negative, params } = request;
  const settings = {
    model,
    prompt,
    size,
    negative,
    params,
    n: $("#n").value,
    seed: $("#seed").value,
  };
  try {
    localStorage.setItem(SETTINGS, JSON.stringify(settings));
  } catch { /* storage full or off */ }
}

export function savedSettings() {
  try {
    return JSON.parse(localStorage.getItem(SETTINGS) ?? "null");
  } catch {
    return null;
  }
}

export function restoreSettings(saved) {
  if (!saved || saved.model !== state.model?.id) return;
  $("#prompt").value = saved.prompt ?? "";
  $("#n").value = saved.n || "1";
  $("#seed").value = saved.seed ?? "";
  $("#negative").value = saved.negative ?? "";
  const size = $$("input[name=size]").find((r) => r.value === saved.size);
  if (size) size.checked = true;
  for (const input of $$("[data-param]")) {
    const value = saved.params?.[input.dataset.param];
    if (value === undefined) continue;
    if (input.type === "checkbox") input.checked = value === true;
    else input.value = String(value);
  }
}
