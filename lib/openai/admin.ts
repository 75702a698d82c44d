/**
 * The admin API (`ADMIN_API_KEY`): access keys with quotas, managed at run time on KV, and usage
 * per key, model and day; plus `GET /v1/usage`, where a key sees its own. Without `ADMIN_API_KEY`
 * these routes do not exist (404). Changes take effect on the next request, on every instance:
 * nothing of a key is cached in a process.
 * @module
 */
import { z } from "zod";
import { findModel, resolveModel } from "../generation/registry.ts";
import { readJsonObject } from "../server/body.ts";
import { ApiError, invalidParam } from "../server/errors.ts";
import { zodError } from "../generation/zod_error.ts";
import { jsonResponse } from "../server/response.ts";
import { noRoute } from "../server/router.ts";
import { bearerKey, isAccepted } from "../siliconflow/keys.ts";
import { type KeyFields, type KeyRecord, type QuotaStore, utcDay } from "../quota/store.ts";
import { authorizeRequest } from "./auth.ts";
import { bodyLimits, type RequestContext } from "./context.ts";

type Params = Readonly<Record<string, string | undefined>>;

const Limit = z.number().int().min(0).max(1_000_000_000).nullable().optional();
const Fields = z.strictObject({
  name: z.string().trim().min(1).max(100),
  images_per_day: Limit,
  images_per_month: Limit,
  videos_per_day: Limit,
  videos_per_month: Limit,
  models: z.array(z.string().min(1).max(200)).max(100).nullable().optional(),
  expires_at: z.iso.datetime({ offset: true }).nullable().optional(),
  disabled: z.boolean().optional(),
  prompt_extend: z.boolean().optional(),
});
const Create = Fields.omit({ disabled: true });
const Patch = Fields.partial();

/** The quota store, after checking the admin key; a 404 when the admin API is off. */
function admin(ctx: RequestContext): QuotaStore {
  const { config, quota } = ctx.app;
  if (!config.adminApiKey || !quota) {
    throw noRoute(ctx.request.method, ctx.url.pathname);
  }
  const presented = bearerKey(ctx.request.headers);
  if (!presented || !isAccepted(presented, [config.adminApiKey])) {
    throw new ApiError(401, "The admin API needs 'Authorization: Bearer <ADMIN_API_KEY>'.", {
      code: "invalid_api_key",
    });
  }
  return quota;
}

/** A key as the admin API shows it: everything but the hash. */
function shown(record: KeyRecord): Omit<KeyRecord, "hash"> {
  const { hash: _hash, ...rest } = record;
  return rest;
}

async function fields<T extends z.ZodType>(ctx: RequestContext, schema: T): Promise<z.infer<T>> {
  const parsed = schema.safeParse(await readJsonObject(ctx.request, bodyLimits(ctx)));
  if (!parsed.success) throw zodError(parsed.error);
  const models = (parsed.data as KeyFields).models;
  models?.forEach((id, i) => {
    try {
      resolveModel(ctx.app.config.modelAliases, id, { withImages: false });
    } catch {
      throw invalidParam(`models[${i}]`, `models[${i}]: '${id}' is not a model or alias here`);
    }
  });
  return parsed.data;
}

/** `POST /admin/v1/keys`: a new key; its secret is shown here only. */
export async function createKey(ctx: RequestContext): Promise<Response> {
  const quota = admin(ctx);
  const { record, key } = await quota.create(await fields(ctx, Create));
  return jsonResponse({ ...shown(record), key }, 201);
}

/** `GET /admin/v1/keys`: every key with its usage today and this month, never the secret. */
export async function listKeys(ctx: RequestContext): Promise<Response> {
  const quota = admin(ctx);
  const records = await quota.list();
  const data = await Promise.all(
    records.map(async (r) => ({ ...shown(r), usage: await quota.counted(r.id) })),
  );
  return jsonResponse({ object: "list", data });
}

function unknownKey(id: string | undefined): ApiError {
  return new ApiError(404, `No key '${String(id).slice(0, 100)}'`, {
    param: "id",
    code: "key_not_found",
  });
}

/** `PATCH /admin/v1/keys/{id}`: limits, models, expiry, name or `disabled`. */
export async function updateKey(ctx: RequestContext, params: Params): Promise<Response> {
  const quota = admin(ctx);
  const record = await quota.update(params.id ?? "", await fields(ctx, Patch));
  if (!record) throw unknownKey(params.id);
  return jsonResponse(shown(record));
}

/** `DELETE /admin/v1/keys/{id}`: revokes a key. */
export async function deleteKey(ctx: RequestContext, params: Params): Promise<Response> {
  const quota = admin(ctx);
  if (!(await quota.delete(params.id ?? ""))) throw unknownKey(params.id);
  return jsonResponse({ id: params.id, object: "key", deleted: true });
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** What a usage row of a model counts. */
function unitOf(model: string): "images" | "videos" {
  return findModel(model)?.video ? "videos" : "images";
}

/** `GET /admin/v1/usage?from=…&to=…[&format=csv]`: per key, model and day. */
export async function adminUsage(ctx: RequestContext): Promise<Response> {
  const quota = admin(ctx);
  const { day, month } = utcDay(ctx.app.now());
  const q = ctx.url.searchParams;
  const from = q.get("from") ?? `${month}-01`;
  const to = q.get("to") ?? day;
  for (const [param, value] of [["from", from], ["to", to]]) {
    if (!DATE.test(value) || Number.isNaN(Date.parse(value))) {
      throw invalidParam(param, `${param} must be a date, YYYY-MM-DD`);
    }
  }
  const names = new Map((await quota.list()).map((r) => [r.id, r.name]));
  const rows = (await quota.usage(from, to)).map((r) => ({
    date: r.date,
    key_id: r.key_id,
    key_name: names.get(r.key_id) ?? null,
    model: r.model,
    unit: unitOf(r.model),
    requested: r.requested,
    made: r.made,
    failures: r.failures,
  }));
  if (q.get("format") === "csv") {
    const cell = (v: unknown) =>
      /[",\n]/.test(String(v ?? "")) ? `"${String(v).replaceAll('"', '""')}"` : String(v ?? "");
    const head = "date,key_id,key_name,model,unit,requested,made,failures";
    const lines = rows.map((r) => Object.values(r).map(cell).join(","));
    return new Response([head, ...lines].join("\n") + "\n", {
      headers: { "content-type": "text/csv; charset=utf-8" },
    });
  }
  return jsonResponse({ object: "list", from, to, data: rows });
}

/** `GET /v1/usage`: a managed key's own usage this month, its limits and what remains. */
export async function ownUsage(ctx: RequestContext): Promise<Response> {
  const auth = await authorizeRequest(ctx);
  const quota = ctx.app.quota;
  if (!auth.account || !quota) {
    throw new ApiError(400, "Usage is kept for access keys made by this server's admin API.", {
      code: "usage_not_available",
    });
  }
  const { account } = auth;
  const { day, month } = utcDay(ctx.app.now());
  const rows = await quota.usage(`${month}-01`, day, account.id);
  const counted = await quota.counted(account.id);
  const videos = await quota.counted(account.id, "videos");
  const left = (limit: number | null | undefined, used: number) =>
    limit === null || limit === undefined ? null : Math.max(0, limit - used);
  return jsonResponse({
    object: "usage",
    data: rows.map((r) => ({ date: r.date, model: r.model, [unitOf(r.model)]: r.made })),
    limits: {
      images_per_day: account.images_per_day,
      images_per_month: account.images_per_month,
      videos_per_day: account.videos_per_day ?? null,
      videos_per_month: account.videos_per_month ?? null,
    },
    remaining: {
      today: left(account.images_per_day, counted.today),
      this_month: left(account.images_per_month, counted.this_month),
      videos_today: left(account.videos_per_day, videos.today),
      videos_this_month: left(account.videos_per_month, videos.this_month),
    },
  });
}
