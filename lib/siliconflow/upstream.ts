/**
 * Everything that reaches SiliconFlow, built once per server: the client (or, in demo mode, the
 * in-process stand-in in its place), the pool of the server's own keys, and downloads of the
 * generated images. Route handlers get one {@link Upstream} and never see which it is.
 * @module
 */
import type { Config } from "../config.ts";
import type { Logger } from "../server/logger.ts";
import {
  type ChatAnswer,
  type ListedModel,
  SiliconFlowClient,
  type UpstreamResult,
  type VideoStatus,
} from "./client.ts";
import {
  downloadBytes,
  type DownloadedImage,
  downloadImage,
  downloadInto,
  fetchFollowing,
  type ImageSink,
} from "./download.ts";
import { fingerprint, KeyPool, type UpstreamAuth, withPoolKey } from "./keys.ts";

/** One call's worth of context: whose key, which cancellation, where the trace id goes. */
export interface CallScope {
  /** Which key pays. */
  auth: UpstreamAuth;
  /** Aborts the call when the client goes away. */
  signal: AbortSignal;
  /** The origin the request came to (the demo's image links point back at it), when asked. */
  origin: () => string;
  /** Hears the upstream trace id as soon as it is known. */
  onTraceId?: (traceId: string) => void;
}

/** The SiliconFlow side, as the OpenAI surface uses it. */
export interface Upstream {
  /** Whether the stand-in answers instead of SiliconFlow. */
  readonly demo: boolean;
  /** Makes one generation call per body, with the scope's key and cancellation. */
  caller(scope: CallScope): (body: Record<string, unknown>) => Promise<UpstreamResult>;
  /** One chat completion (prompt rewriting) with the scope's key and cancellation. */
  chat(scope: CallScope, body: Record<string, unknown>): Promise<ChatAnswer>;
  /**
   * Video job calls with the scope's key. A submit answers SiliconFlow's `requestId` and, on the
   * server's keys, the fingerprint of the key that took it: the job's status is asked with that
   * same key (`keyRef`), as SiliconFlow knows a job only under the account that made it.
   */
  videos(scope: CallScope): {
    submit(body: Record<string, unknown>): Promise<{ requestId: string; keyRef?: string }>;
    status(requestId: string, keyRef?: string): Promise<VideoStatus>;
  };
  /** Downloads an image SiliconFlow generated (never a URL from a client), as base64. */
  download(url: string, signal: AbortSignal): Promise<DownloadedImage>;
  /** The same, as bytes (for an image store that takes bytes). */
  downloadBytes(
    url: string,
    signal: AbortSignal,
  ): Promise<{ bytes: Uint8Array<ArrayBuffer>; contentType: string }>;
  /**
   * The same, streamed into `sink` as it arrives (for an image store that takes streams); a video
   * passes a larger `maxBytes`.
   */
  downloadInto<T>(
    url: string,
    signal: AbortSignal,
    sink: ImageSink<T>,
    maxBytes?: number,
  ): Promise<T>;
  /** GETs a video SiliconFlow made (never a URL from a client), passing `range` on. */
  openVideo(url: string, signal: AbortSignal, range?: string): Promise<Response>;
  /** The server's own keys and their state, in server-key and anonymous modes. */
  keyStatus(): ReturnType<KeyPool["status"]> | undefined;
  /** Serves the stand-in's images (`GET /demo/images/…`); undefined outside demo mode. */
  demoImages?: (request: Request) => Promise<Response>;
  /**
   * SiliconFlow's image models for this key (the caller's, or one of the server's), cached for a
   * few minutes; empty when the list cannot be had (the built-in list then stands alone).
   */
  listedModels(scope: { auth?: UpstreamAuth; origin: string }): Promise<ListedModel[]>;
}

/** How long a key's model list is kept; a failed fetch is retried sooner. */
const MODEL_LIST_TTL_MS = 5 * 60_000;
const MODEL_LIST_RETRY_MS = 30_000;
const MODEL_LISTS_KEPT = 64;

/** Options of {@link createUpstream}. */
export interface UpstreamOptions {
  /** The fetch for upstream calls (tests pass their own). */
  fetch?: typeof fetch;
  /** Where key events are logged. */
  logger: Logger;
  /** The clock. */
  now: () => number;
  /** The most calls in flight at once (spreads them over connections). */
  maxInFlight: number;
  /**
   * In demo mode, the stand-in that answers instead of SiliconFlow (`lib/demo/`), loaded on first
   * use: the composition root passes it, so this side of the bridge does not import the demo.
   */
  demo?: () => Promise<(request: Request) => Promise<Response>>;
}

/** Builds the upstream side for a configuration. */
export function createUpstream(config: Config, options: UpstreamOptions): Upstream {
  // The stand-in (and its PNG encoder) loads on first use, off the start-up path.
  let stand: Promise<(request: Request) => Promise<Response>> | undefined;
  const load = options.demo;
  const demo = config.demo && load
    ? async (request: Request) => await (await (stand ??= load()))(request)
    : undefined;
  // In demo mode upstream calls never leave the process: the stand-in answers them directly.
  const fetcher: typeof fetch = demo
    ? (input, init) => demo(new Request(input, init))
    : options.fetch ?? globalThis.fetch;
  const client = new SiliconFlowClient({
    fetch: demo ? fetcher : options.fetch,
    timeoutMs: config.upstreamTimeoutMs,
    maxInFlight: options.maxInFlight,
    secrets: config.siliconflowKeys,
  });
  const pool = config.keyMode === "pass-through"
    ? undefined
    : new KeyPool(config.siliconflowKeys, options.now, options.logger);
  // Per key (its fingerprint): the list, or the pending fetch, and when it goes stale.
  const lists = new Map<string, { until: number; models: Promise<ListedModel[]> }>();
  const listFor = (apiKey: string, baseUrl: string): Promise<ListedModel[]> => {
    const key = fingerprint(apiKey);
    const now = options.now();
    const cached = lists.get(key);
    if (cached && cached.until > now) return cached.models;
    const entry = { until: now + MODEL_LIST_TTL_MS, models: Promise.resolve<ListedModel[]>([]) };
    entry.models = client.listImageModels({ apiKey, baseUrl }).catch(() => {
      entry.until = options.now() + MODEL_LIST_RETRY_MS;
      return [];
    });
    lists.delete(key);
    if (lists.size >= MODEL_LISTS_KEPT) lists.delete(lists.keys().next().value!);
    lists.set(key, entry);
    return entry.models;
  };

  return {
    demo: demo !== undefined,
    caller({ auth, signal, origin, onTraceId }) {
      const baseUrl = demo ? `${origin()}/demo/v1` : config.baseUrl;
      const call = (apiKey: string, body: Record<string, unknown>) =>
        client.generate(body, { apiKey, signal, baseUrl, onTraceId });
      if (auth.kind === "client") return (body) => call(auth.key, body);
      return (body) => withPoolKey(pool!, (key) => call(key, body));
    },
    chat({ auth, signal, origin }, body) {
      const baseUrl = demo ? `${origin()}/demo/v1` : config.baseUrl;
      const call = (apiKey: string) => client.chat(body, { apiKey, signal, baseUrl });
      return auth.kind === "client" ? call(auth.key) : withPoolKey(pool!, call);
    },
    videos({ auth, signal, origin, onTraceId }) {
      const baseUrl = () => demo ? `${origin()}/demo/v1` : config.baseUrl;
      const options = (apiKey: string) => ({ apiKey, signal, baseUrl: baseUrl(), onTraceId });
      return {
        async submit(body) {
          if (auth.kind === "client") {
            return { requestId: await client.submitVideo(body, options(auth.key)) };
          }
          return await withPoolKey(pool!, async (key) => ({
            requestId: await client.submitVideo(body, options(key)),
            keyRef: fingerprint(key),
          }));
        },
        status(requestId, keyRef) {
          if (auth.kind === "client") return client.videoStatus(requestId, options(auth.key));
          const key = (keyRef && pool!.byFingerprint(keyRef)) || pool!.pick();
          return client.videoStatus(requestId, options(key));
        },
      };
    },
    download(url, signal) {
      return downloadImage(url, { fetch: fetcher, timeoutMs: config.upstreamTimeoutMs, signal });
    },
    downloadBytes(url, signal) {
      return downloadBytes(url, { fetch: fetcher, timeoutMs: config.upstreamTimeoutMs, signal });
    },
    downloadInto(url, signal, sink, maxBytes) {
      const options = { fetch: fetcher, timeoutMs: config.upstreamTimeoutMs, signal, maxBytes };
      return downloadInto(url, options, sink);
    },
    openVideo(url, signal, range) {
      // The same redirect policy as image downloads: a few hops, and only to http(s).
      return fetchFollowing(url, fetcher, signal, range ? { range } : {});
    },
    keyStatus: () => pool?.status(),
    demoImages: demo,
    listedModels({ auth, origin }) {
      const baseUrl = demo ? `${origin}/demo/v1` : config.baseUrl;
      let apiKey: string | undefined;
      if (auth?.kind === "client") apiKey = auth.key;
      else if (pool) {
        try {
          apiKey = pool.pick();
        } catch {
          apiKey = undefined; // every key resting or set aside: the built-in list stands alone
        }
      }
      return apiKey ? listFor(apiKey, baseUrl) : Promise.resolve([]);
    },
  };
}
