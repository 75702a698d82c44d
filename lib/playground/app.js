// @ts-check
/// <reference lib="dom" />
/**
 * The playground's script, served as `/playground/app.js` (no inline script: the page's
 * Content-Security-Policy allows scripts from this server only): the models, the key, the input
 * images, Generate, and the results. Plain browser JavaScript, checked by `deno task check`.
 */
import { buildForm, params, restoreSettings, savedSettings, saveSettings } from "./form.js";
import { makeVideo, resumeVideos } from "./video.js";

/**
 * The page's element for a selector: the page is this script's own, so each one is there, and of
 * the kind its selector says.
 * @type {(sel: string) => any}
 */
export const $ = (sel) => document.querySelector(sel);
/** The page's elements for a selector (see {@link $}). @type {(sel: string) => any[]} */
export const $$ = (sel) => [...document.querySelectorAll(sel)];
export const el = (tag, props = {}, ...kids) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const kid of kids) node.append(kid);
  return node;
};
export const state = { mode: "pass-through", models: [], model: null, images: [], running: null };

// The MCP endpoint, as a client must be given it: this server's own address.
$("#mcp-url").textContent = `${location.origin}/mcp`;

/** @returns {Record<string, string>} */
export function headers(json = true) {
  /** @type {Record<string, string>} */
  const h = {};
  if (json) h["content-type"] = "application/json";
  const key = $("#key").value.trim();
  if (key) h.authorization = "Bearer " + key;
  return h;
}

// Each Generate is an action; the status line speaks of the latest one only.
export function newAction() {
  state.action = (state.action ?? 0) + 1;
  return state.action;
}

export function setStatus(text, action) {
  if (action !== undefined && action === state.action) $("#status").textContent = text;
}

/** Shows an error where the eye is: beside the button, brought into view; the status gives way. */
export function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
  if (!message) return;
  $("#status").textContent = "";
  box.scrollIntoView({ block: "nearest" });
}

/** What went wrong with a request that never got an answer, in plain words. */
export function failedFetch(err) {
  return err instanceof TypeError
    ? "The server at " + location.origin +
      " cannot be reached: is it running, and is this machine online?"
    : String(err.message ?? err);
}

// The request fields an error may name, as this page labels them.
export const FIELD_LABELS = {
  prompt: "Prompt",
  seed: "Seed",
  n: "Images",
  image_size: "Size",
  size: "Size",
  negative_prompt: "Negative prompt",
  image: "Input images",
  "image[]": "Input images",
  input_reference: "First frame",
};

/** A server's error in this page's words: its own fields, not the API's headers. */
export async function apiError(res) {
  let error;
  try {
    error = (await res.json()).error;
  } catch { /* not JSON */ }
  if (!error) return "The server answered HTTP " + res.status + ".";
  const key = "the “" + $("#key-label").textContent + "” field";
  if (error.code === "missing_api_key") return "Enter a key in " + key + " above, then try again.";
  if (error.code === "invalid_api_key") {
    return "The key in " + key + " was refused: " + error.message;
  }
  const field = FIELD_LABELS[error.param] ?? FIELD_LABELS[String(error.param).split("[")[0]];
  return field ? field + ": " + error.message : error.message;
}

export async function showQuota() {
  // For an access key with quotas, what is left of them.
  const res = await fetch("/v1/usage", { headers: headers(false) }).catch(() => undefined);
  const box = $("#quota");
  if (!res?.ok) {
    box.hidden = true;
    return;
  }
  const { remaining } = await res.json();
  const part = (label, n) => n === null ? label + ": no limit" : label + ": " + n;
  box.textContent = "Images left · " + part("today", remaining.today) + " · " +
    part("this month", remaining.this_month);
  box.hidden = false;
}

export async function loadModels(preferred) {
  const res = await fetch("/v1/models", { headers: headers(false) });
  const list = (await res.json()).data.filter((m) => m.owned_by !== "alias");
  state.models = list;
  const select = $("#model");
  const current = preferred ?? select.value;
  select.replaceChildren(...list.map((m) => el("option", { value: m.id, textContent: m.id })));
  if (list.some((m) => m.id === current)) select.value = current;
  await chooseModel(select.value);
}

export async function chooseModel(id) {
  const res = await fetch("/v1/models/" + id, { headers: headers(false) });
  if (!res.ok) return showError(await apiError(res));
  state.model = await res.json();
  buildForm();
}

export async function resized(file) {
  // Large photos are scaled down in the browser (longest side 2048) before upload.
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, 2048 / Math.max(bitmap.width, bitmap.height));
  if (scale === 1 && file.size < 8 * 1024 * 1024) return file;
  const canvas = el("canvas", {
    width: Math.round(bitmap.width * scale),
    height: Math.round(bitmap.height * scale),
  });
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}

export async function addImages(files) {
  const max = state.model?.input_images?.max ?? 0;
  for (const file of files) {
    if (!file.type.startsWith("image/") || state.images.length >= max) continue;
    state.images.push(await resized(file));
  }
  showThumbs();
}

export function showThumbs() {
  $("#thumbs").replaceChildren(...state.images.map((blob, i) => {
    const img = el("img", { src: URL.createObjectURL(blob), alt: "input image " + (i + 1) });
    const remove = el("button", {
      type: "button",
      textContent: "×",
      title: "Remove image " + (i + 1),
    });
    remove.addEventListener("click", () => {
      state.images.splice(i, 1);
      showThumbs();
    });
    return el("span", { className: "thumb" }, img, remove);
  }));
}

/**
 * Polls an image task until it has ended: its result, or undefined once its error is shown.
 * @param {{ poll_url: string, status: string, result?: any, error?: { message: string } }} task
 * @param {AbortSignal} signal
 */
async function collect(task, signal) {
  const path = new URL(task.poll_url, location.href).pathname;
  while (task.status === "queued" || task.status === "in_progress") {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    signal.throwIfAborted();
    const res = await fetch(path, { headers: headers(false), signal });
    if (!res.ok) return showError(await apiError(res));
    task = await res.json();
  }
  if (task.status === "failed") {
    return showError(await apiError(Response.json({ error: task.error })));
  }
  return task.result;
}

export async function generate(request) {
  if (state.running) return;
  showError("");
  const action = newAction();
  if (state.model?.video) {
    return makeVideo(request, action).catch((err) => showError(failedFetch(err)));
  }
  const abort = new AbortController();
  const started = Date.now();
  const timer = setInterval(() => {
    setStatus("Generating… " + Math.round((Date.now() - started) / 1000) + " s", action);
  }, 250);
  state.running = abort;
  $("#generate").disabled = true;
  $("#cancel").hidden = false;
  try {
    const body = {
      model: request.model,
      prompt: request.prompt,
      n: request.n,
      seed: request.seed,
      response_format: "b64_json",
      ...request.params,
    };
    if (request.size) body.image_size = request.size;
    if (request.negative) body.negative_prompt = request.negative;
    let res;
    if (request.images.length) {
      const form = new FormData();
      for (const [k, v] of Object.entries(body)) form.append(k, String(v));
      request.images.forEach((blob, i) =>
        form.append("image[]", blob, "input-" + (i + 1) + ".png")
      );
      res = await fetch("/v1/images/edits", {
        method: "POST",
        body: form,
        headers: { ...headers(false), prefer: "respond-async" },
        signal: abort.signal,
      });
    } else {
      res = await fetch("/v1/images/generations", {
        method: "POST",
        body: JSON.stringify(body),
        headers: { ...headers(), prefer: "respond-async" },
        signal: abort.signal,
      });
    }
    if (!res.ok) return showError(await apiError(res));
    saveSettings(request);
    // With an image store the server makes the images in the background (a CDN in front may cut
    // a request at 100 s); the page polls the task until it has ended.
    const answer = res.status === 202
      ? await collect(await res.json(), abort.signal)
      : await res.json();
    if (!answer) return;
    answer.data.forEach((image, i) => addResult(request, image, i, Date.now() - started));
    setStatus("Done in " + ((Date.now() - started) / 1000).toFixed(1) + " s", action);
    if (state.mode === "server-key") showQuota();
  } catch (err) {
    if (abort.signal.aborted) setStatus("Cancelled", action);
    else showError(failedFetch(err));
  } finally {
    clearInterval(timer);
    state.running = null;
    $("#generate").disabled = false;
    $("#cancel").hidden = true;
  }
}

export function addResult(request, image, index, ms) {
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
    state.images = [await blobOf(src)];
    showThumbs();
    $("#prompt").focus();
  });
  const extra = Object.entries(request.params).map(([k, v]) => k + "=" + v);
  if (request.negative) extra.push("negative: " + request.negative);
  const caption = el("figcaption", {
    textContent: request.model + " · seed " + seed + (request.size ? " · " + request.size : "") +
      (extra.length ? " · " + extra.join(", ") : "") + " · " + (ms / 1000).toFixed(1) + " s",
  });
  const figure = el(
    "figure",
    {},
    img,
    caption,
    el("div", { className: "actions" }, download, again, edit),
  );
  $("#gallery").prepend(figure);
  // On a phone the results sit below the form: bring the new one into view once it has its size.
  if (onPhone()) {
    img.addEventListener("load", () => figure.scrollIntoView({ block: "start" }), { once: true });
  }
}

export function onPhone() {
  return matchMedia("(max-width: 48rem)").matches;
}

/** An image of the gallery as a Blob: a data: URI is decoded here (the CSP allows no fetch of one). */
export async function blobOf(src) {
  if (!src.startsWith("data:")) return await (await fetch(src)).blob();
  const [head, b64] = src.split(",");
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: head.slice(5).split(";")[0] });
}

export function currentRequest() {
  // Always a seed, so that every result can say it and be made again: the user's, or a new one.
  const seedField = $("#seed");
  const seed = seedField.value === "" ? Math.floor(Math.random() * 1e9) : Number(seedField.value);
  return {
    model: $("#model").value,
    prompt: $("#prompt").value,
    n: Number($("#n").value) || 1,
    seed,
    size: $("input[name=size]:checked")?.value,
    negative: $("#negative").value.trim(),
    params: params(),
    images: [...state.images],
  };
}

export async function start() {
  const health = await (await fetch("/healthz")).json();
  state.mode = health.mode;
  const needsKey = health.mode !== "demo" && health.mode !== "anonymous";
  $("#key-field").hidden = !needsKey;
  $("#key-label").textContent = health.mode === "server-key"
    ? "Access key (from this server's owner)"
    : "SiliconFlow API key";
  const saved = localStorage.getItem("playground-key");
  if (saved) {
    $("#key").value = saved;
    $("#remember").checked = true;
  }
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
  $("#dice").addEventListener("click", () => {
    $("#seed").value = String(Math.floor(Math.random() * 1e9));
  });
  $("#form").addEventListener("submit", (e) => {
    e.preventDefault();
    generate(currentRequest());
  });
  $("#cancel").addEventListener("click", () => state.running?.abort());
  $("#files").addEventListener("change", (e) => addImages(e.target.files));
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => e.preventDefault());
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    addImages(e.dataTransfer.files);
  });
  document.addEventListener("paste", (e) => addImages([...e.clipboardData.files]));
  const settings = savedSettings();
  await loadModels(settings?.model);
  restoreSettings(settings);
  if (state.mode === "server-key" && $("#key").value) showQuota();
  resumeVideos();
}

start().catch((err) => showError(failedFetch(err)));
