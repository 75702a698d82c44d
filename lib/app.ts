/**
 * The {@link App}: the server, built once by the composition root (`lib/handler.ts`), as every
 * route handler sees it through its request's context. A module of its own at the top, since it
 * names the parts of every room.
 * @module
 */
import type { Config } from "./config.ts";
import type { GenerationSlots } from "./generation/slots.ts";
import type { ImageTasks } from "./jobs/image_task.ts";
import type { VideoService } from "./jobs/video_service.ts";
import type { Webhooks } from "./jobs/webhook.ts";
import type { QuotaStore } from "./quota/store.ts";
import type { BodyBudget } from "./server/body.ts";
import type { Logger } from "./server/logger.ts";
import type { Upstream } from "./siliconflow/upstream.ts";
import type { MediaStore } from "./store/media_store.ts";

/** The server, built once: configuration, clock, logger, the upstream side and the counters. */
export interface App {
  /** The configuration. */
  readonly config: Config;
  /** The clock (ms since the epoch). */
  readonly now: () => number;
  /** The logger. */
  readonly logger: Logger;
  /** SiliconFlow (or the stand-in), its keys and image downloads. */
  readonly upstream: Upstream;
  /** `MAX_CONCURRENCY` generation slots. */
  readonly slots: GenerationSlots;
  /** Streamed answers still open. */
  readonly streams: { count: number };
  /** `MAX_BODY_BUFFER_BYTES`: request-body bytes held at once. */
  readonly bodyBudget: BodyBudget;
  /** Aborted when the server's shutdown grace runs out. */
  readonly shutdownSignal: AbortSignal;
  /** Where generated images are re-hosted (`IMAGE_STORE`), if anywhere. */
  readonly store?: MediaStore;
  /** Access keys with quotas on KV (`ADMIN_API_KEY`), if enabled. */
  readonly quota?: QuotaStore;
  /** Video jobs on KV (`KV_PATH`), this instance's poller of them, and the waits for them. */
  readonly videos: VideoService;
  /** Async image tasks on KV, and this instance's runs of them. */
  readonly tasks: ImageTasks;
  /** The webhooks of `callback_url` (`WEBHOOK_SECRET`). */
  readonly webhooks: Webhooks;
  /** Answers a request as the server would, in process (the MCP tools call the routes so). */
  readonly dispatch: (request: Request) => Promise<Response>;
}
