// @ts-check
/// <reference lib="dom" />
/**
 * The playground's videos: a video model's request goes to `POST /v1/videos`, its card shows the
 * job's progress, then plays the MP4 in a `<video>` element (fetched with the key, as a blob). The
 * jobs' ids are kept in the browser, so a reload picks them up where they were.
 */
import { $, apiError, el, headers, onPhone, setStatus, showError } from "./app.js";
import { saveSettings } from "./form.js";

export const VIDEOS = "playground-videos";
export const VIDEO_POLL_MS = 1500;
/** While the server cannot be reached, the wait between tries doubles up to this. */
export const VIDEO_POLL_MAX_MS = 30000;

export function savedVideos() {
  try {
    return JSON.parse(localStorage.getItem(VIDEOS) ?? "[]");
  } catch {
    return [];
  }
}

export function keepVideos(list) {
  try {
    localStorage.setItem(VIDEOS, JSON.stringify(list.slice(0, 20)));
  } catch { /* storage off */ }
}

export async function makeVideo(request, action) {
  const body = {
    model: request.model,
    prompt: request.prompt,
    seed: request.seed,
    ...request.params,
  };
  if (request.size) body.size = request.size;
  if (request.negative) body.negative_prompt = request.negative;
  let res;
  if (request.images.length) {
    const form = new FormData();
    for (const [k, v] of Object.entries(body)) form.append(k, String(v));
    form.append("input_reference", request.images[0], "first-frame.png");
    res = await fetch("/v1/videos", { method: "POST", body: form, headers: headers(false) });
  } else {
    res = await fetch("/v1/videos", {
      method: "POST",
      body: JSON.stringify(body),
      headers: headers(),
    });
  }
  if (!res.ok) return showError(await apiError(res));
  saveSettings(request);
  const job = await res.json();
  keepVideos([job.id, ...savedVideos()]);
  setStatus("Video submitted: it appears in the results as it renders", action);
  watchVideo(job, action);
}

export function videoCard(job) {
  const figure = el("figure", { className: "video" });
  figure.dataset.videoId = job.id;
  $("#gallery").prepend(figure);
  if (onPhone()) figure.scrollIntoView({ block: "start" });
  return figure;
}

export function caption(job, text) {
  return el("figcaption", {
    textContent: job.model + " · " + job.size + " · " + job.seconds + " s · " + text,
  });
}

/**
 * Follows a job to its end, then plays it; a job that is gone is forgotten. While the server
 * cannot be reached the card says so, and the tries back off. The action is the Generate that
 * made it (none after a reload): only the latest action speaks on the status line.
 */
export async function watchVideo(job, action) {
  const figure = videoCard(job);
  let wait = VIDEO_POLL_MS;
  let unreachable = false;
  while (job.status === "queued" || job.status === "in_progress") {
    const bar = el("progress", { max: 100, value: job.progress });
    const where = unreachable
      ? "the server cannot be reached; trying again in " + Math.round(wait / 1000) + " s"
      : job.status === "queued"
      ? "queued"
      : "rendering, " + job.progress + "%";
    figure.replaceChildren(
      el("p", { className: "prompt", textContent: job.prompt }),
      bar,
      caption(job, where),
    );
    await new Promise((resolve) => setTimeout(resolve, wait));
    const res = await fetch("/v1/videos/" + job.id, { headers: headers(false) }).catch(() =>
      undefined
    );
    if (res?.status === 404) {
      keepVideos(savedVideos().filter((id) => id !== job.id));
      return figure.remove();
    }
    unreachable = !res;
    wait = unreachable ? Math.min(wait * 2, VIDEO_POLL_MAX_MS) : VIDEO_POLL_MS;
    if (res?.ok) job = await res.json();
  }
  if (job.status === "failed") {
    figure.replaceChildren(
      el("p", { className: "prompt", textContent: job.prompt }),
      caption(job, "failed: " + (job.error?.message ?? "no reason given")),
    );
    setStatus("The video failed", action);
    return;
  }
  setStatus("Video ready", action);
  const res = await fetch("/v1/videos/" + job.id + "/content", { headers: headers(false) });
  if (!res.ok) {
    figure.replaceChildren(caption(job, await apiError(res)));
    return;
  }
  const src = URL.createObjectURL(await res.blob());
  const video = el("video", {
    src,
    controls: true,
    muted: true,
    loop: true,
    autoplay: true,
    playsInline: true,
  });
  const download = el("a", { href: src, download: job.id + ".mp4", textContent: "Download" });
  figure.replaceChildren(
    video,
    caption(job, job.prompt),
    el("div", { className: "actions" }, download),
  );
}

/** The jobs of earlier visits, oldest first so that the newest ends on top. */
export async function resumeVideos() {
  for (const id of savedVideos().reverse()) {
    const res = await fetch("/v1/videos/" + id, { headers: headers(false) }).catch(() => undefined);
    if (res?.ok) watchVideo(await res.json());
    else if (res?.status === 404) keepVideos(savedVideos().filter((v) => v !== id));
  }
}
