/**
 * Helpers of the tests that run `main.ts` with video jobs: its environment against the fake, the
 * Videos API calls, and waiting for a condition (never for a fixed time).
 */
import { assertEquals } from "@std/assert";
import { type SpawnedServer, spawnMain } from "./_spawn.ts";
import { until } from "./_helpers.ts";

export { until };

/** The access key the tests present. */
export const ACCESS = "access-key-video-0123456789";

/** Headers with {@link ACCESS}. */
export const auth = { authorization: `Bearer ${ACCESS}`, "content-type": "application/json" };

/** A server-key environment on the fake, with its KV and store in `dir`. */
export function videoEnv(
  fake: { baseUrl: string },
  dir: string,
  serverKey: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    SILICONFLOW_BASE_URL: fake.baseUrl,
    SILICONFLOW_API_KEY: serverKey,
    PROXY_API_KEYS: ACCESS,
    KV_PATH: `${dir}/kv.sqlite3`,
    IMAGE_STORE: `${dir}/images`,
    VIDEO_POLL_MS: "150",
    ...extra,
  };
}

/** Starts main.ts with read and write on `dir` (where its KV and store are). */
export function spawnIn(dir: string, env: Record<string, string>): Promise<SpawnedServer> {
  return spawnMain([], env, {
    permissions: [`--allow-read=${dir}`, `--allow-write=${dir}`],
  });
}

/** Makes a video; answers the job. */
export async function createVideo(
  url: string,
  prompt: string,
  headers: Record<string, string> = auth,
): Promise<{ id: string; status: string }> {
  const res = await fetch(`${url}/v1/videos`, {
    method: "POST",
    headers,
    body: JSON.stringify({ prompt }),
  });
  const body = await res.json();
  assertEquals(res.status, 200, JSON.stringify(body));
  return body;
}

/** A job as the Videos API shows it. */
export interface VideoSeen {
  id: string;
  status: string;
  prompt: string;
  error: unknown;
}

/** A job as the Videos API shows it. */
export async function retrieveVideo(
  url: string,
  id: string,
  headers: Record<string, string> = auth,
): Promise<VideoSeen> {
  const res = await fetch(`${url}/v1/videos/${id}`, { headers });
  const body = await res.json();
  assertEquals(res.status, 200, JSON.stringify(body));
  return body;
}

/** Waits until a job has ended (asking with `headers`); answers it. */
export function untilDone(
  url: string,
  id: string,
  withinMs: number,
  headers: Record<string, string> = auth,
): Promise<VideoSeen> {
  return until(`${id} ends`, async () => {
    const video = await retrieveVideo(url, id, headers);
    return video.status === "completed" || video.status === "failed" ? video : undefined;
  }, withinMs);
}

/** The files in a folder (none when it does not exist). */
export function filesIn(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name);
  } catch {
    return [];
  }
}
