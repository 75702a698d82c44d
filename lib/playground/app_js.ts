/**
 * The playground's script, served as `/playground/app.js` (no inline script: the page's
 * Content-Security-Policy allows scripts from this server only). Plain browser JavaScript.
 * @module
 */
export const APP_JS: string = String.raw`
const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...kids) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const kid of kids) node.append(kid);
  return node;
};
const state = { mode: "pass-through", models: [], model: null, images: [], running: null };

function headers(json = true) {
  const h = {};
  if (json) h["content-type"] = "application/json";
  const key = $("#key").value.trim();
  if (key) h.authorization = "Bearer " + key;
  return h;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

async function apiError(res) {
  try {
    const body = await res.json();
    return body.error?.message ?? "HTTP " + res.status;
  } catch {
    return "HTTP " + res.status;
  }
}

async function showQuota() {
  // For an access key with quotas, what is left of them.
  const res = await fetch("/v1/usage", { headers: headers(false) }).catch(() => undefined);
  const box = $("#quota");
  if (!res?.ok) { box.hidden = true; return; }
  const { remaining } = await res.json();
  const part = (label, n) => n === null ? label + ": no limit" : label + ": " + n;
  box.textContent = "Images left · " + part("today", remaining.today) + " · " +
    part("this month", remaining.this_month);
  box.hidden = false;
}

async function loadModels() {
  const res = await fetch("/v1/models", { headers: headers(false) });
  const list = (await res.json()).data.filter((m) => m.owned_by !== "alias");
  state.models = list;
  const select = $("#model");
  select.replaceChildren(...list.map((m) => el("option", { value: m.id, textContent: m.id })));
  await chooseModel(select.value);
}

async function chooseModel(id) {
  const res = await fetch("/v1/models/" + id, { headers: headers(false) });
  if (!res.ok) return showError(await apiError(res));
  state.model = await res.json();
  buildForm();
}

const RATIOS = [[1, 1], [4, 3], [3, 4], [3, 2], [2, 3], [16, 9], [9, 16], [21, 9], [9, 21], [2, 1], [1, 2]];

/** The common aspect ratio nearest to a size, e.g. 16:9 for 1664×928. */
function ratioName(w, h) {
  let best = RATIOS[0];
  for (const r of RATIOS) {
    if (Math.abs(Math.log((w / h) / (r[0] / r[1]))) < Math.abs(Math.log((w / h) / (best[0] / best[1])))) best = r;
  }
  return best[0] + ":" + best[1];
}

const SKIP = new Set(["image_size", "seed", "negative_prompt", "batch_size"]);

function buildForm() {
  const m = state.model;
  const props = m.parameters?.properties ?? {};
  // Aspect ratios from the model's recommended sizes.
  const sizes = m.sizes ?? [];
  $("#sizes").replaceChildren(...sizes.map((size, i) => {
    const [w, h] = size.split("x").map(Number);
    const id = "size-" + i;
    const input = el("input", { type: "radio", name: "size", value: size, id, checked: i === 0 });
    const text = ratioName(w, h) + " (" + w + "×" + h + ")";
    return el("span", { className: "size" }, input, el("label", { htmlFor: id, textContent: text }));
  }));
  $("#sizes-field").hidden = sizes.length === 0;
  $("#negative-field").hidden = !("negative_prompt" in props);
  const extra = Object.entries(props).filter(([name]) => !SKIP.has(name));
  $("#params").replaceChildren(...extra.map(([name, schema]) => field(name, schema)));
  const max = m.input_images?.max ?? 0;
  $("#images-field").hidden = max === 0;
  $("#images-hint").textContent = max ? "Up to " + max + " image" + (max > 1 ? "s" : "") +
    (m.input_images.min ? " (required)" : "") : "";
  state.images = state.images.slice(0, max);
  showThumbs();
  document.body.dataset.model = m.id;
}

function field(name, schema) {
  const id = "p-" + name;
  const label = el("label", { htmlFor: id, textContent: name.replaceAll("_", " ") });
  let input;
  if (schema.enum) {
    input = el("select", { id }, el("option", { value: "", textContent: "default" }),
      ...schema.enum.map((v) => el("option", { value: v, textContent: v })));
  } else if (schema.type === "boolean") {
    input = el("input", { id, type: "checkbox" });
  } else if (schema.type === "integer" || schema.type === "number") {
    input = el("input", { id, type: "number", placeholder: "default",
      min: schema.minimum ?? "", max: schema.maximum ?? "", step: schema.type === "integer" ? 1 : "any" });
  } else {
    input = el("input", { id, type: "text", placeholder: "default" });
  }
  input.dataset.param = name;
  input.dataset.kind = schema.type ?? "string";
  const range = schema.minimum !== undefined ? " (" + schema.minimum + "–" + schema.maximum + ")" : "";
  return el("div", { className: "field" }, label, input, el("small", { textContent: range }));
}

function params() {
  const out = {};
  for (const input of document.querySelectorAll("[data-param]")) {
    const kind = input.dataset.kind;
    if (input.type === "checkbox") { if (input.checked) out[input.dataset.param] = true; continue; }
    if (input.value === "") continue;
    out[input.dataset.param] = kind === "integer" || kind === "number" ? Number(input.value) : input.value;
  }
  return out;
}

async function resized(file) {
  // Large photos are scaled down in the browser (longest side 2048) before upload.
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, 2048 / Math.max(bitmap.width, bitmap.height));
  if (scale === 1 && file.size < 8 * 1024 * 1024) return file;
  const canvas = el("canvas", { width: Math.round(bitmap.width * scale), height: Math.round(bitmap.height * scale) });
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}

async function addImages(files) {
  const max = state.model?.input_images?.max ?? 0;
  for (const file of files) {
    if (!file.type.startsWith("image/") || state.images.length >= max) continue;
    state.images.push(await resized(file));
  }
  showThumbs();
}

function showThumbs() {
  $("#thumbs").replaceChildren(...state.images.map((blob, i) => {
    const img = el("img", { src: URL.createObjectURL(blob), alt: "input image " + (i + 1) });
    const remove = el("button", { type: "button", textContent: "×", title: "Remove image " + (i + 1) });
    remove.addEventListener("click", () => { state.images.splice(i, 1); showThumbs(); });
    return el("span", { className: "thumb" }, img, remove);
  }));
}

async function generate(request) {
  if (state.running) return;
  showError("");
  const abort = new AbortController();
  const started = Date.now();
  const timer = setInterval(() => {
    $("#status").textContent = "Generating… " + Math.round((Date.now() - started) / 1000) + " s";
  }, 250);
  state.running = abort;
  $("#generate").disabled = true;
  $("#cancel").hidden = false;
  try {
    const body = { model: request.model, prompt: request.prompt, n: request.n, seed: request.seed,
      response_format: "b64_json", ...request.params };
    if (request.size) body.image_size = request.size;
    if (request.negative) body.negative_prompt = request.negative;
    let res;
    if (request.images.length) {
      const form = new FormData();
      for (const [k, v] of Object.entries(body)) form.append(k, String(v));
      request.images.forEach((blob, i) => form.append("image[]", blob, "input-" + (i + 1) + ".png"));
      res = await fetch("/v1/images/edits", { method: "POST", body: form, headers: headers(false), signal: abort.signal });
    } else {
      res = await fetch("/v1/images/generations", { method: "POST", body: JSON.stringify(body), headers: headers(), signal: abort.signal });
    }
    if (!res.ok) return showError(await apiError(res));
    const answer = await res.json();
    answer.data.forEach((image, i) => addResult(request, image, i, Date.now() - started));
    $("#status").textContent = "Done in " + ((Date.now() - started) / 1000).toFixed(1) + " s";
    if (state.mode === "server-key") showQuota();
  } catch (err) {
    if (abort.signal.aborted) $("#status").textContent = "Cancelled";
    else showError(String(err.message ?? err));
  } finally {
    clearInterval(timer);
    state.running = null;
    $("#generate").disabled = false;
    $("#cancel").hidden = true;
  }
}

function addResult(request, image, index, ms) {
  const src = image.b64_json ? "data:image/png;base64," + image.b64_json : image.url;
  if (!src.startsWith("data:") && !src.startsWith(location.origin + "/images/")) return;
  const seed = request.seed + (state.model?.id === request.model && request.n > 1 ? index : 0);
  const name = request.model.split("/").pop() + "-seed-" + seed + ".png";
  const img = el("img", { src, alt: request.prompt, className: "result" });
  const download = el("a", { href: src, download: name, textContent: "Download" });
  const again = el("button", { type: "button", textContent: "Again" });
  again.addEventListener("click", () => generate(request));
  const edit = el("button", { type: "button", textContent: "Edit this" });
  edit.addEventListener("click", async () => {
    const editor = state.models.find((m) => /Edit/i.test(m.id));
    if (!editor) return;
    $("#model").value = editor.id;
    await chooseModel(editor.id);
    state.images = [await (await fetch(src)).blob()];
    showThumbs();
    $("#prompt").focus();
  });
  const extra = Object.entries(request.params).map(([k, v]) => k + "=" + v);
  if (request.negative) extra.push("negative: " + request.negative);
  const caption = el("figcaption", {
    textContent: request.model + " · seed " + seed + (request.size ? " · " + request.size : "") +
      (extra.length ? " · " + extra.join(", ") : "") + " · " + (ms / 1000).toFixed(1) + " s",
  });
  $("#gallery").prepend(el("figure", {}, img, caption, el("div", { className: "actions" }, download, again, edit)));
}

function currentRequest() {
  // Always a seed, so that every result can say it and be made again: the user's, or a new one.
  const seedField = $("#seed");
  const seed = seedField.value === "" ? Math.floor(Math.random() * 1e9) : Number(seedField.value);
  return {
    model: $("#model").value,
    prompt: $("#prompt").value,
    n: Number($("#n").value) || 1,
    seed,
    size: document.querySelector("input[name=size]:checked")?.value,
    negative: $("#negative").value.trim(),
    params: params(),
    images: [...state.images],
  };
}

async function start() {
  const health = await (await fetch("/healthz")).json();
  state.mode = health.mode;
  const needsKey = health.mode !== "demo" && health.mode !== "anonymous";
  $("#key-field").hidden = !needsKey;
  $("#key-label").textContent = health.mode === "server-key"
    ? "Access key (from this server's owner)" : "SiliconFlow API key";
  const saved = localStorage.getItem("playground-key");
  if (saved) { $("#key").value = saved; $("#remember").checked = true; }
  $("#key").addEventListener("change", () => {
    if ($("#remember").checked) localStorage.setItem("playground-key", $("#key").value);
    loadModels();
    if (state.mode === "server-key") showQuota();
  });
  $("#remember").addEventListener("change", () => {
    if ($("#remember").checked) localStorage.setItem("playground-key", $("#key").value);
    else localStorage.removeItem("playground-key");
  });
  $("#model").addEventListener("change", (e) => chooseModel(e.target.value));
  $("#dice").addEventListener("click", () => { $("#seed").value = String(Math.floor(Math.random() * 1e9)); });
  $("#form").addEventListener("submit", (e) => { e.preventDefault(); generate(currentRequest()); });
  $("#cancel").addEventListener("click", () => state.running?.abort());
  $("#files").addEventListener("change", (e) => addImages(e.target.files));
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => e.preventDefault());
  drop.addEventListener("drop", (e) => { e.preventDefault(); addImages(e.dataTransfer.files); });
  document.addEventListener("paste", (e) => addImages([...e.clipboardData.files]));
  await loadModels();
  if (state.mode === "server-key" && $("#key").value) showQuota();
}

start().catch((err) => showError(String(err.message ?? err)));
`;
