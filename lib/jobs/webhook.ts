/**
 * Webhooks when a job ends (`callback_url` on a video or an async image task): a JSON event signed
 * as Standard Webhooks signs it (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,…`,
 * HMAC-SHA256 with `WEBHOOK_SECRET`; OpenAI signs its own webhooks the same way), sent as the job's
 * follow-up so that a restart or another instance still delivers it, and tried again with growing
 * waits. Never sent to a loopback, private or link-local address unless `WEBHOOK_ALLOW_PRIVATE`.
 * @module
 */
import { invalidParam } from "../server/errors.ts";
import { errorText, type Logger } from "../server/logger.ts";
import { timeLimit } from "../time_limit.ts";
import type { JobRecord } from "./store.ts";

/** A job's webhook: where it goes, the links' base, and how its delivery stands. */
export interface Callback {
  /** The `callback_url`, checked. */
  url: string;
  /** Where this server's links point (its public base when the job was made). */
  base: string;
  /** Deliveries tried so far. */
  attempts: number;
  /** `pending` until delivered, or given up after the last try. */
  state: "pending" | "delivered" | "failed";
}

/** A job that may have a webhook. */
export type WithCallback = JobRecord & { callback?: Callback };

/** The follow-up a job that ends now needs: its webhook, when it has one still to send. */
export function webhookDue(job: WithCallback, now: number): { followUp?: number } {
  return job.callback?.state === "pending" ? { followUp: now } : {};
}

/** The waits before each try after the first: about 13 minutes in all. */
export const RETRY_WAITS_MS: readonly number[] = [1_000, 5_000, 30_000, 120_000, 600_000];
/** How long one delivery may take. */
const DELIVERY_TIMEOUT_MS = 10_000;
const MAX_URL_LENGTH = 2_048;

/** Whether an IPv4 address (dotted) is loopback, private, link-local, shared or reserved. */
function privateV4(ip: string): boolean {
  const [a, b] = ip.split(".").map(Number);
  return a === 0 || a === 10 || a === 127 || a >= 224 ||
    (a === 100 && b >= 64 && b <= 127) || (a === 169 && b === 254) ||
    (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) ||
    (a === 192 && b === 0) || (a === 198 && (b === 18 || b === 19));
}

/** Whether an address (IPv4, or IPv6 without brackets) is one a webhook never goes to. */
export function isPrivateAddress(ip: string): boolean {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) return privateV4(ip);
  const v6 = ip.toLowerCase();
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(v6);
  if (mapped) return privateV4(mapped[1]);
  return v6 === "::" || v6 === "::1" || /^f[cd]/.test(v6) || /^fe[89ab]/.test(v6) ||
    v6.startsWith("::ffff:") || v6.startsWith("64:ff9b:");
}

/** What the webhooks need of the server. */
export interface WebhookDeps {
  /** `WEBHOOK_SECRET`; without one, `callback_url` is ignored (and named). */
  secret?: string;
  /** `WEBHOOK_ALLOW_PRIVATE`: loopback and private addresses are allowed (tests, one-host setups). */
  allowPrivate: boolean;
  fetch: typeof fetch;
  logger: Logger;
  now: () => number;
  /** Resolves a host name's addresses (Deno's DNS resolver; tests pass their own). */
  resolve?: (host: string) => Promise<string[]>;
}

async function resolveHost(host: string): Promise<string[]> {
  const found = await Promise.allSettled([
    Deno.resolveDns(host, "A"),
    Deno.resolveDns(host, "AAAA"),
  ]);
  return found.flatMap((r) => r.status === "fulfilled" ? r.value : []);
}

/** The signing key: a `whsec_` secret's base64 bytes, or the secret's own bytes. */
function keyBytes(secret: string): Uint8Array<ArrayBuffer> {
  if (secret.startsWith("whsec_")) {
    try {
      return Uint8Array.fromBase64(secret.slice(6)) as Uint8Array<ArrayBuffer>;
    } catch { /* not base64: its own bytes */ }
  }
  return new TextEncoder().encode(secret);
}

/** Standard Webhooks' signature of one message: `v1,` and the base64 HMAC-SHA256. */
export async function signWebhook(
  secret: string,
  id: string,
  timestamp: number,
  body: string,
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    keyBytes(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign(
    "HMAC",
    key,
    new TextEncoder().encode(`${id}.${timestamp}.${body}`),
  );
  return `v1,${new Uint8Array(mac).toBase64()}`;
}

/** The webhooks of this server. */
export class Webhooks {
  readonly #deps: WebhookDeps;

  constructor(deps: WebhookDeps) {
    this.#deps = deps;
  }

  /** Whether `callback_url` is honoured (a secret is set). */
  get enabled(): boolean {
    return !!this.#deps.secret;
  }

  /** A 400 naming `param` unless `raw` is an http(s) URL to a public address. */
  async checkUrl(raw: unknown, param = "callback_url"): Promise<string> {
    const refuse = (why: string) => invalidParam(param, `${param} ${why}`, "invalid_callback_url");
    if (typeof raw !== "string" || raw.length > MAX_URL_LENGTH || !URL.canParse(raw)) {
      throw refuse(`must be an http or https URL of at most ${MAX_URL_LENGTH} characters`);
    }
    const url = new URL(raw);
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw refuse("must be an http or https URL");
    }
    if (url.username || url.password) throw refuse("must not carry a user name or password");
    const where = await this.#where(url.hostname);
    if (where === "unknown") throw refuse(`names a host that does not resolve (${url.hostname})`);
    if (where === "private") {
      throw refuse(
        "points at a loopback, private or link-local address, where this server sends no webhooks (WEBHOOK_ALLOW_PRIVATE=true allows it)",
      );
    }
    return url.href;
  }

  /** Whether a host is one webhooks may go to (checked again before each delivery). */
  async #where(hostname: string): Promise<"public" | "private" | "unknown"> {
    if (this.#deps.allowPrivate) return "public";
    const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
    if (host === "localhost" || /\.(localhost|local|internal)$/.test(host)) return "private";
    const addresses = /^[\d.]+$/.test(host) || host.includes(":")
      ? [host]
      : await (this.#deps.resolve ?? resolveHost)(host).catch(() => []);
    if (!addresses.length) return "unknown";
    return addresses.some(isPrivateAddress) ? "private" : "public";
  }

  /** Whether a job's webhook is still to be sent (it has ended). */
  due<J extends WithCallback>(job: J): job is J & { callback: Callback } {
    return job.callback?.state === "pending" && (job.status === "completed" ||
      job.status === "failed");
  }

  /**
   * Sends one ended job's event (`type` such as `video.completed`, `data` the object its GET
   * answers); answers the callback's new state and, when it is to be tried again, when.
   */
  async send(
    job: WithCallback & { callback: Callback },
    type: string,
    data: unknown,
    signal: AbortSignal,
  ): Promise<{ callback: Callback; followUp?: number }> {
    const { now, logger, secret } = this.#deps;
    const callback = { ...job.callback, attempts: job.callback.attempts + 1 };
    if (!secret) {
      // Asked for while a secret was set; this process has none to sign with.
      logger({ level: "warn", msg: "webhook not sent: WEBHOOK_SECRET is not set", job: job.id });
      return { callback: { ...callback, state: "failed" } };
    }
    const id = `evt_${job.id}`;
    const timestamp = Math.floor(now() / 1000);
    const body = JSON.stringify({
      object: "event",
      id,
      type,
      created_at: Math.floor((job.finished ?? now()) / 1000),
      data,
    });
    let problem: string;
    const limit = timeLimit(DELIVERY_TIMEOUT_MS, signal);
    try {
      const where = await this.#where(new URL(callback.url).hostname);
      if (where === "private") {
        // The name now points somewhere private: never tried again.
        logger({ level: "warn", msg: "webhook not sent: its host is private now", job: job.id });
        return { callback: { ...callback, state: "failed" } };
      }
      if (where === "unknown") throw new Error("its host does not resolve");
      const response = await this.#deps.fetch(callback.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "siliconflow-image-proxy-webhooks",
          "webhook-id": id,
          "webhook-timestamp": String(timestamp),
          "webhook-signature": await signWebhook(secret, id, timestamp, body),
        },
        body,
        redirect: "manual",
        signal: limit.signal,
      });
      await response.body?.cancel();
      if (response.ok) return { callback: { ...callback, state: "delivered" } };
      problem = `HTTP ${response.status}`;
    } catch (err) {
      if (signal.aborted) throw err; // stopping: the next holder sends it
      problem = errorText(err);
    } finally {
      limit.clear();
    }
    const wait = RETRY_WAITS_MS[callback.attempts - 1];
    logger({
      level: "warn",
      msg: wait === undefined ? "webhook not delivered; given up" : "webhook not delivered yet",
      job: job.id,
      attempts: callback.attempts,
      error: problem,
    });
    return wait === undefined
      ? { callback: { ...callback, state: "failed" } }
      : { callback, followUp: now() + wait };
  }
}
