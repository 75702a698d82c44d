/**
 * Whose a job is (a video, an image task), and the page of one's jobs a list route asks for.
 * @module
 */
import type { JobPage, JobRecord, JobStore } from "../jobs/store.ts";
import { sha256 } from "../quota/records.ts";
import { invalidParam } from "../server/errors.ts";
import { jsonResponse } from "../server/response.ts";
import { bearerKey } from "../siliconflow/keys.ts";
import type { RequestAuth } from "./auth.ts";
import type { RequestContext } from "./context.ts";

/** The owner of a keyless caller's jobs (anonymous mode). */
export const ANONYMOUS = "anonymous";

/**
 * Who a job belongs to: a managed key's id, or a digest of the key presented (never the key). A
 * keyless caller (anonymous mode) is `anonymous`: it may read such a job by its unguessable id,
 * but not list or delete one, since nothing proves the job is its own.
 */
export async function ownerOf(ctx: RequestContext, auth: RequestAuth): Promise<string> {
  if (auth.account) return `key:${auth.account.id}`;
  const presented = bearerKey(ctx.request.headers) ?? (auth.kind === "client" ? auth.key : "");
  return presented ? `sha256:${(await sha256(presented)).slice(0, 40)}` : ANONYMOUS;
}

/** The caller's jobs the query asks for (`after`, `limit` 1–100, `order` asc or desc). */
export async function ownPage<J extends JobRecord>(
  ctx: RequestContext,
  auth: RequestAuth,
  jobs: JobStore<J>,
): Promise<JobPage<J>> {
  const q = ctx.url.searchParams;
  const limit = q.has("limit") ? Number(q.get("limit")) : 20;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    throw invalidParam("limit", "limit must be an integer from 1 to 100");
  }
  const order = q.get("order") ?? "desc";
  if (order !== "asc" && order !== "desc") throw invalidParam("order", "order must be asc or desc");
  const owner = await ownerOf(ctx, auth);
  // A keyless caller owns nothing it could prove: its list is empty.
  if (owner === ANONYMOUS) return { jobs: [], hasMore: false };
  return await jobs.list(owner, { after: q.get("after") ?? undefined, limit, order });
}

/** A list answer with OpenAI's cursor fields. */
export function listResponse<J, T extends { id: string }>(
  page: JobPage<J>,
  show: (job: J) => T,
): Response {
  const data = page.jobs.map(show);
  return jsonResponse(
    {
      object: "list",
      data,
      first_id: data[0]?.id ?? null,
      last_id: data.at(-1)?.id ?? null,
      has_more: page.hasMore,
    },
    200,
    { "cache-control": "no-store" },
  );
}
