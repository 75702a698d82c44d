/**
 * `callback_url` on a video or an async image task: checked now (a 400 naming it for a URL this
 * server will not call), kept on the job, and sent when the job ends (see `lib/jobs/webhook.ts`).
 * @module
 */
import type { Callback } from "../jobs/webhook.ts";
import { present } from "../values.ts";
import type { RequestContext } from "./context.ts";
import { publicBase } from "./stored_images.ts";

/**
 * The job's webhook for a request's `callback_url`, or none. Without `WEBHOOK_SECRET` no webhook
 * is sent, and the field is named as ignored.
 */
export async function callbackOf(
  ctx: RequestContext,
  raw: unknown,
): Promise<{ callback?: Callback; ignored: string[] }> {
  if (!present(raw)) return { ignored: [] };
  const { webhooks } = ctx.app;
  if (!webhooks.enabled) return { ignored: ["callback_url"] };
  const url = await webhooks.checkUrl(raw);
  return { callback: { url, base: publicBase(ctx), attempts: 0, state: "pending" }, ignored: [] };
}
