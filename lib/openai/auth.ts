/**
 * Who is calling: the key modes of `siliconflow/keys.ts`, then the access keys managed on KV.
 * @module
 */
import type { KeyRecord } from "../quota/store.ts";
import { ApiError } from "../server/errors.ts";
import { authorize, bearerKey, type UpstreamAuth } from "../siliconflow/keys.ts";
import type { RequestContext } from "./context.ts";

/** Who called: the key that pays upstream, and a KV-managed access key's record if one was used. */
export type RequestAuth = UpstreamAuth & { account?: KeyRecord };

/**
 * Checks the caller's key: the key modes of `siliconflow/keys.ts` first, then, with the admin API
 * on, the access keys managed on KV. A KV that cannot be reached fails those keys closed (503);
 * keys from the environment keep working.
 */
export async function authorizeRequest(ctx: RequestContext): Promise<RequestAuth> {
  try {
    return authorize(ctx.request.headers, ctx.app.config);
  } catch (err) {
    const quota = ctx.app.quota;
    const presented = bearerKey(ctx.request.headers);
    if (!quota || !presented || !(err instanceof ApiError) || err.status !== 401) throw err;
    const account = await quota.find(presented);
    if (!account) throw err;
    if (account.disabled) {
      throw new ApiError(401, "This access key has been disabled by the server's owner.", {
        code: "invalid_api_key",
      });
    }
    if (account.expires_at && Date.parse(account.expires_at) <= ctx.app.now()) {
      throw new ApiError(401, `This access key expired at ${account.expires_at}.`, {
        code: "invalid_api_key",
      });
    }
    return { kind: "pool", account };
  }
}
