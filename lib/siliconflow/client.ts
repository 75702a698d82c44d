/**
 * The SiliconFlow client: `POST {base}/images/generations` (and the video job's `video/submit`
 * and `video/status`), with a timeout, abort on client
 * disconnect, a cap on the response size, and the mapping of upstream failures to OpenAI errors.
 * @module
 */
import { readResponse } from "../server/body.ts";
import { ApiError, CLIENT_CLOSED } from "../server/errors.ts";
import { jsonBody } from "../server/response.ts";
import { timeLimit } from "../time_limit.ts";
import {
  type ChatAnswer,
  describeNetworkError,
  mapUpstreamError,
  parseChatAnswer,
  parseUpstreamSuccess,
  parseVideoStatus,
  parseVideoSubmit,
  type UpstreamResult,
  type VideoStatus,
  withTrace,
} from "./answers.ts";

export type { ChatAnswer, UpstreamResult, VideoStatus } from "./answers.ts";

/** Where the demo stand-in serves its images. */
export const DEMO_IMAGE_PREFIX = "/demo/images/";

/** The header SiliconFlow puts on every response, for its support desk. */
export const TRACE_HEADER = "x-siliconcloud-trace-id";

/** The largest upstream JSON answer read; anything longer is a fault. */
export const MAX_UPSTREAM_RESPONSE_BYTES: number = 16 * 1024 * 1024;

/** An image model as SiliconFlow lists it. */
export interface ListedModel {
  /** Its id, e.g. `Qwen/Qwen-Image`. */
  id: string;
  /** Whether it makes images from text, changes images, or makes videos. */
  subType: "text-to-image" | "image-to-image" | "video";
}

/** Per-call options. */
export interface CallOptions {
  /** The SiliconFlow key to send. */
  apiKey: string;
  /** Aborts the call when the client goes away. */
  signal?: AbortSignal;
  /** Base URL, e.g. `https://api.siliconflow.cn/v1`. */
  baseUrl: string;
  /** Called with the trace id as soon as the upstream headers arrive. */
  onTraceId?: (traceId: string) => void;
}

/** Options of {@link SiliconFlowClient}. */
export interface SiliconFlowClientOptions {
  /** The fetch to use; tests and the demo mode pass their own. */
  fetch?: typeof fetch;
  /** Gives up on a call after this many milliseconds. */
  timeoutMs: number;
  /**
   * The most upstream calls that may be in flight at once. With the platform's own fetch, calls
   * are spread over enough HTTP clients that no connection carries more than
   * {@link STREAMS_PER_CONNECTION} of them.
   */
  maxInFlight?: number;
  /** The server's own keys: removed from every upstream error text, whatever their length. */
  secrets?: readonly string[];
}

/**
 * The most concurrent calls put on one upstream connection. HTTP/2 servers may cap concurrent
 * streams per connection (RFC 9113 recommends a cap of at least 100), and Deno's fetch queues
 * calls past the cap on that one connection instead of opening another, so generations that take
 * tens of seconds would wait for each other.
 */
export const STREAMS_PER_CONNECTION = 100;

/** Calls SiliconFlow's image generation endpoint. */
export class SiliconFlowClient {
  #fetch: typeof fetch;
  #timeoutMs: number;
  // The first lane is fetch's shared client; each further one, made when the others are full,
  // has a connection pool of its own. They live as long as the process.
  #lanes: { client?: Deno.HttpClient; inFlight: number }[] = [{ inFlight: 0 }];
  #maxLanes: number;
  #secrets: readonly string[];

  /** Creates a client. */
  constructor(options: SiliconFlowClientOptions) {
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#secrets = (options.secrets ?? []).filter(Boolean);
    this.#timeoutMs = options.timeoutMs;
    this.#maxLanes = options.fetch
      ? 1
      : Math.max(1, Math.ceil((options.maxInFlight ?? 0) / STREAMS_PER_CONNECTION));
  }

  /** The lane (HTTP client) with the fewest calls in flight, adding one when all are full. */
  #lane(): { client?: Deno.HttpClient; inFlight: number } {
    let best = this.#lanes[0];
    for (const lane of this.#lanes) if (lane.inFlight < best.inFlight) best = lane;
    if (best.inFlight >= STREAMS_PER_CONNECTION && this.#lanes.length < this.#maxLanes) {
      best = { client: Deno.createHttpClient({}), inFlight: 0 };
      this.#lanes.push(best);
    }
    return best;
  }

  /** Makes one generation call; throws {@link ApiError} on any failure. */
  generate(body: Record<string, unknown>, options: CallOptions): Promise<UpstreamResult> {
    return this.#post("images/generations", body, options, parseUpstreamSuccess);
  }

  /** A chat completion (`POST {base}/chat/completions`): the answer's text and its tokens. */
  chat(body: Record<string, unknown>, options: CallOptions): Promise<ChatAnswer> {
    return this.#post("chat/completions", body, options, parseChatAnswer);
  }

  /** Submits a video job (`POST {base}/video/submit`); answers SiliconFlow's `requestId`. */
  submitVideo(body: Record<string, unknown>, options: CallOptions): Promise<string> {
    return this.#post("video/submit", body, options, parseVideoSubmit);
  }

  /** A video job's state (`POST {base}/video/status`). */
  videoStatus(requestId: string, options: CallOptions): Promise<VideoStatus> {
    return this.#post("video/status", { requestId }, options, parseVideoStatus);
  }

  /** One JSON `POST` to SiliconFlow, its 200 answer parsed by `parse`; an {@link ApiError} else. */
  async #post<T>(
    path: string,
    body: Record<string, unknown>,
    options: CallOptions,
    parse: (text: string, traceId?: string) => T,
  ): Promise<T> {
    const limit = timeLimit(this.#timeoutMs, options.signal);
    let traceId: string | undefined;
    const lane = this.#lane();
    lane.inFlight++;
    try {
      if (options.signal?.aborted) throw new DOMException("aborted", "AbortError");
      const response = await this.#fetch(`${options.baseUrl.replace(/\/+$/, "")}/${path}`, {
        method: "POST",
        headers: {
          "authorization": `Bearer ${options.apiKey}`,
          "content-type": "application/json",
          "accept": "application/json",
        },
        body: jsonBody(body),
        signal: limit.signal,
        // A redirect from the API is a fault to report, never a hop to somewhere else.
        redirect: "manual",
        ...(lane.client ? { client: lane.client } : {}),
      });
      traceId = response.headers.get(TRACE_HEADER)?.slice(0, 128) || undefined;
      if (traceId) options.onTraceId?.(traceId);
      return parse(await this.#read(response, options.apiKey, traceId), traceId);
    } catch (err) {
      if (err instanceof ApiError) throw err;
      if (options.signal?.aborted) {
        throw new ApiError(CLIENT_CLOSED, "The client closed the request", {
          code: "client_closed",
        });
      }
      if (limit.timedOut()) {
        throw new ApiError(
          504,
          withTrace(`SiliconFlow did not answer within ${this.#timeoutMs} ms`, traceId),
          { code: "upstream_timeout" },
        );
      }
      throw new ApiError(
        502,
        withTrace(`Could not reach SiliconFlow: ${describeNetworkError(err)}`, traceId),
        { code: "upstream_unreachable", cause: err },
      );
    } finally {
      lane.inFlight--;
      limit.clear();
    }
  }

  /**
   * SiliconFlow's image and video models: `GET {base}/models?type=image` and `?type=video`, and
   * `?sub_type=image-to-image` to tell the models that change images from those that make them.
   * The .cn and .com sites list different catalogues. Throws on any failure (the caller falls back
   * to the built-in list).
   */
  async listImageModels(
    options: { apiKey: string; baseUrl: string; signal?: AbortSignal },
  ): Promise<ListedModel[]> {
    const ids = async (query: string): Promise<string[]> => {
      const limit = timeLimit(Math.min(this.#timeoutMs, 10_000), options.signal);
      const response = await this.#fetch(
        `${options.baseUrl.replace(/\/+$/, "")}/models?${query}`,
        { headers: { authorization: `Bearer ${options.apiKey}` }, signal: limit.signal },
      );
      const bytes = await readResponse(response, 1024 * 1024).finally(limit.clear);
      if (!response.ok || !bytes) throw new Error(`HTTP ${response.status}`);
      const data = JSON.parse(new TextDecoder().decode(bytes))?.data;
      if (!Array.isArray(data)) throw new Error("no data list");
      return data.map((entry) => entry && typeof entry === "object" ? entry.id : undefined)
        .filter((id): id is string => typeof id === "string" && /^[\w./:-]{1,200}$/.test(id));
    };
    const [images, editors, videos] = await Promise.all(
      ["type=image", "sub_type=image-to-image", "type=video"].map(ids),
    );
    const editing = new Set(editors);
    return [
      ...images.map((id): ListedModel => ({
        id,
        subType: editing.has(id) ? "image-to-image" : "text-to-image",
      })),
      ...videos.map((id): ListedModel => ({ id, subType: "video" })),
    ];
  }

  /** Reads a 200 answer's text, or throws the error it stands for, with no key left in its text. */
  async #read(response: Response, apiKey: string, traceId?: string): Promise<string> {
    const bytes = await readResponse(response, MAX_UPSTREAM_RESPONSE_BYTES);
    if (bytes === undefined) {
      throw new ApiError(502, withTrace("SiliconFlow's answer is too large", traceId), {
        code: "upstream_bad_response",
      });
    }
    let text = new TextDecoder().decode(bytes);
    // Should SiliconFlow ever echo a key, it must not reach our client or logs. An error text
    // loses every configured key and the one sent, however short; an answer's image links are
    // only ever rid of a long key, which cannot be part of a link by chance.
    if (response.status !== 200) {
      for (const key of [...this.#secrets, apiKey]) {
        if (key) text = text.replaceAll(key, "[redacted]");
      }
      throw mapUpstreamError({ status: response.status, text, headers: response.headers, traceId });
    }
    return apiKey.length >= 16 ? text.replaceAll(apiKey, "[redacted]") : text;
  }
}
