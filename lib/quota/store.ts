/**
 * Access keys with quotas and usage, on Deno KV: a local SQLite file by default
 * (`KV_PATH=./data/kv.sqlite3`), the platform's distributed KV on Deno Deploy, or any KV Connect
 * server by URL. Keys are stored by the SHA-256 of the secret only. Quotas are reserved before the
 * SiliconFlow call with an atomic check-and-set on the day's and the month's counters (UTC), so
 * instances sharing one KV never let a key overspend; what was not made is given back. SQLite's
 * "database is locked" (two processes committing at once) is retried with a jittered backoff.
 * @module
 */
import { type KvConnection, LazyKv } from "../kv.ts";
import { randomToken } from "../values.ts";
import {
  exceeded,
  type KeyFields,
  type KeyRecord,
  nextDay,
  nextMonth,
  type Reservation,
  sha256,
  unavailable,
  type UsageRow,
  utcDay,
} from "./records.ts";

export type { KeyFields, KeyRecord, Reservation, UsageRow } from "./records.ts";

/** What a quota counts: images, or videos (each its own limits). */
export type Unit = "images" | "videos";

/** The KV keys of a key's day and month counters of a unit, for the UTC day of `at`. */
function counterKeys(id: string, unit: Unit, at: number): [Deno.KvKey, Deno.KvKey] {
  const { day, month } = utcDay(at);
  const [d, m] = unit === "images" ? ["d", "m"] : ["vd", "vm"];
  return [["quota", id, d, day], ["quota", id, m, month]];
}
export { utcDay } from "./records.ts";

/** How long a day's and a month's counters are kept. */
const [DAY_LIFE_MS, MONTH_LIFE_MS] = [40 * 86_400_000, 400 * 86_400_000];
/** A reservation outlives any request; one that is never settled nor recovered then lapses. */
const RESERVATION_LIFE_MS = 7 * 86_400_000;

/** A reservation while its request runs: the key's id, and which counters (`at`: when made). */
interface HeldReservation {
  id: string;
  unit: Unit;
  count: number;
  at: number;
}

/** The instance whose requests hold reservations, and whether another one is still alive. */
export interface InstanceRef {
  readonly holder: string;
  alive(holder: string, memo?: Map<string, Promise<boolean>>): Promise<boolean>;
}

/** Keys, quotas and usage in one Deno KV. */
export class QuotaStore {
  #kv: LazyKv;
  #now: () => number;

  #instance?: InstanceRef;

  /**
   * `path`: a file, `:memory:`, a KV Connect URL, or undefined for the platform's KV.
   * `instance` names the reservations this process makes, so that those of a process that died
   * are given back by {@link recover}.
   */
  constructor(
    path: KvConnection | string | undefined,
    now: () => number,
    instance?: InstanceRef,
  ) {
    this.#kv = new LazyKv(path, unavailable);
    this.#now = now;
    this.#instance = instance;
  }

  /** Makes a key; the secret is returned here only. */
  async create(fields: KeyFields & { name: string }): Promise<{ record: KeyRecord; key: string }> {
    const key = `sfk_${randomToken(24)}`;
    const record: KeyRecord = {
      id: `key_${randomToken(9)}`,
      name: fields.name,
      hash: await sha256(key),
      created_at: new Date(this.#now()).toISOString(),
      last_used_at: null,
      images_per_day: fields.images_per_day ?? null,
      images_per_month: fields.images_per_month ?? null,
      videos_per_day: fields.videos_per_day ?? null,
      videos_per_month: fields.videos_per_month ?? null,
      models: fields.models ?? null,
      expires_at: fields.expires_at ?? null,
      disabled: false,
      prompt_extend: fields.prompt_extend ?? false,
    };
    const made = await this.#kv.guard((kv) =>
      kv.atomic().check({ key: ["keys", record.id], versionstamp: null })
        .set(["keys", record.id], record).set(["key_hash", record.hash], record.id).commit()
    );
    if (!made.ok) throw new Error(`a key with id ${record.id} exists already`);
    return { record, key };
  }

  /** Every key. */
  list(): Promise<KeyRecord[]> {
    return this.#kv.guard(async (kv) => {
      const out: KeyRecord[] = [];
      for await (const entry of kv.list<KeyRecord>({ prefix: ["keys"] })) out.push(entry.value);
      return out;
    });
  }

  /** One key, or undefined. */
  get(id: string): Promise<KeyRecord | undefined> {
    return this.#kv.guard(async (kv) => (await kv.get<KeyRecord>(["keys", id])).value ?? undefined);
  }

  /** Changes a key's fields; undefined for an unknown id. */
  update(id: string, fields: KeyFields): Promise<KeyRecord | undefined> {
    return this.#kv.guard(async (kv) => {
      for (;;) {
        const entry = await kv.get<KeyRecord>(["keys", id]);
        if (!entry.value) return undefined;
        const record = { ...entry.value, ...fields };
        if ((await kv.atomic().check(entry).set(["keys", id], record).commit()).ok) return record;
      }
    });
  }

  /** Revokes a key; false for an unknown id. */
  delete(id: string): Promise<boolean> {
    return this.#kv.guard(async (kv) => {
      const entry = await kv.get<KeyRecord>(["keys", id]);
      if (!entry.value) return false;
      await kv.atomic().delete(["keys", id]).delete(["key_hash", entry.value.hash]).commit();
      return true;
    });
  }

  /** The record of a presented secret, or undefined; notes (to the minute) when it was last used. */
  async find(secret: string): Promise<KeyRecord | undefined> {
    const hash = await sha256(secret);
    return this.#kv.guard(async (kv) => {
      const id = (await kv.get<string>(["key_hash", hash])).value;
      if (!id) return undefined;
      const entry = await kv.get<KeyRecord>(["keys", id]);
      if (!entry.value) return undefined;
      // last_used_at is kept to the minute: one write a minute, not one a request.
      const now = this.#now();
      const last = entry.value.last_used_at ? Date.parse(entry.value.last_used_at) : 0;
      if (now - last < 60_000) return entry.value;
      const touched = { ...entry.value, last_used_at: new Date(now).toISOString() };
      await kv.atomic().check(entry).set(["keys", id], touched).commit(); // lost races are fine
      return touched;
    });
  }

  /** Images (or videos) counted against a key today and this month (UTC). */
  counted(id: string, unit: Unit = "images"): Promise<{ today: number; this_month: number }> {
    const [dayKey, monthKey] = counterKeys(id, unit, this.#now());
    return this.#kv.guard(async (kv) => {
      const [d, m] = await kv.getMany<number[]>([dayKey, monthKey]);
      return { today: d.value ?? 0, this_month: m.value ?? 0 };
    });
  }

  /**
   * Reserves `count` images (or videos) against the key's day and month limits, atomically
   * across every instance sharing this KV; a 429 `quota_exceeded` past either, saying which and
   * when it resets.
   */
  reserve(record: KeyRecord, count: number, unit: Unit = "images"): Promise<Reservation> {
    const now = this.#now();
    const [dayKey, monthKey] = counterKeys(record.id, unit, now);
    const perDay = (unit === "images" ? record.images_per_day : record.videos_per_day) ?? null;
    const perMonth = (unit === "images" ? record.images_per_month : record.videos_per_month) ??
      null;
    // Kept until the request settles; one whose process died is given back by recover().
    const key: Deno.KvKey = ["reservation", this.#instance?.holder ?? "-", randomToken(12)];
    const held: HeldReservation = { id: record.id, unit, count, at: now };
    return this.#kv.guard(async (kv) => {
      for (;;) {
        const [d, m] = await kv.getMany<number[]>([dayKey, monthKey]);
        const today = (d.value ?? 0) + count;
        const thisMonth = (m.value ?? 0) + count;
        if (perDay !== null && today > perDay) {
          throw exceeded("daily", perDay, d.value ?? 0, nextDay(now), now, unit);
        }
        if (perMonth !== null && thisMonth > perMonth) {
          throw exceeded("monthly", perMonth, m.value ?? 0, nextMonth(now), now, unit);
        }
        const op = kv.atomic().check(d).check(m).set(dayKey, today, { expireIn: DAY_LIFE_MS })
          .set(monthKey, thisMonth, { expireIn: MONTH_LIFE_MS });
        if (this.#instance) op.set(key, held, { expireIn: RESERVATION_LIFE_MS });
        if ((await op.commit()).ok) break;
      }
      return {
        key: this.#instance ? key : undefined,
        release: (unmade: number) =>
          this.#giveBack(dayKey, monthKey, Math.max(0, unmade), this.#instance ? key : undefined),
      };
    });
  }

  /** Gives back `count` of what was reserved for a key at `at` (a video job that failed later). */
  giveBack(id: string, unit: Unit, count: number, at: number): Promise<void> {
    const [dayKey, monthKey] = counterKeys(id, unit, at);
    return this.#giveBack(dayKey, monthKey, count);
  }

  /**
   * Takes `count` off the counters (keeping their expiry) and, in the same write, deletes the
   * reservation `settles`; when that reservation is gone already (recovered), nothing changes.
   */
  #giveBack(
    dayKey: Deno.KvKey,
    monthKey: Deno.KvKey,
    count: number,
    settles?: Deno.KvKey,
  ): Promise<void> {
    return this.#kv.guard(async (kv) => {
      for (;;) {
        const reservation = settles ? await kv.get(settles) : undefined;
        if (reservation && reservation.versionstamp === null) return;
        const op = kv.atomic();
        if (reservation) op.check(reservation).delete(reservation.key);
        if (count > 0) {
          const [d, m] = await kv.getMany<number[]>([dayKey, monthKey]);
          op.check(d).check(m)
            .set(dayKey, Math.max(0, (d.value ?? 0) - count), { expireIn: DAY_LIFE_MS })
            .set(monthKey, Math.max(0, (m.value ?? 0) - count), { expireIn: MONTH_LIFE_MS });
        }
        if ((await op.commit()).ok) return;
      }
    });
  }

  /**
   * Gives back the reservations of processes that are no longer alive (they died with their
   * requests in flight). Run by every instance's scans: a crash costs a key nothing it did not
   * get, within one heartbeat's life and a scan.
   */
  async recover(): Promise<number> {
    const instance = this.#instance;
    if (!instance) return 0;
    const lapsed: Deno.KvEntry<HeldReservation>[] = [];
    await this.#kv.guard(async (kv) => {
      const memo = new Map<string, Promise<boolean>>();
      for await (const entry of kv.list<HeldReservation>({ prefix: ["reservation"] })) {
        if (!(await instance.alive(entry.key[1] as string, memo))) lapsed.push(entry);
      }
    });
    for (const { key, value } of lapsed) {
      const [dayKey, monthKey] = counterKeys(value.id, value.unit, value.at);
      await this.#giveBack(dayKey, monthKey, value.count, key);
    }
    return lapsed.length;
  }

  /** Adds to a key's usage for a model today. */
  async record(
    id: string,
    model: string,
    counts: { requested: number; made: number; failures: number },
  ): Promise<void> {
    const { day } = utcDay(this.#now());
    await this.#kv.guard(async (kv) => {
      const op = kv.atomic();
      for (const [field, n] of Object.entries(counts)) {
        if (n > 0) op.sum(["usage", day, id, model, field], BigInt(n));
      }
      // Sums with no check cannot conflict: a commit that is not ok is a store's fault.
      if (!(await op.commit()).ok) throw new Error("the usage write was not committed");
    });
  }

  /** Usage rows from `from` to `to` (inclusive, `YYYY-MM-DD`), optionally for one key. */
  usage(from: string, to: string, keyId?: string): Promise<UsageRow[]> {
    return this.#kv.guard(async (kv) => {
      const rows = new Map<string, UsageRow>();
      const iter = kv.list<Deno.KvU64>({ start: ["usage", from], end: ["usage", `${to}~`] });
      for await (const { key, value } of iter) {
        const [, date, id, model, field] = key as string[];
        if (keyId && id !== keyId) continue;
        const rowKey = `${date}\u0000${id}\u0000${model}`;
        const row = rows.get(rowKey) ??
          { date, key_id: id, model, requested: 0, made: 0, failures: 0 };
        row[field as "requested" | "made" | "failures"] = Number(value.value);
        rows.set(rowKey, row);
      }
      return [...rows.values()];
    });
  }

  /** Closes the KV. */
  close(): Promise<void> {
    return this.#kv.close();
  }
}
