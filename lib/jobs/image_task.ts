/**
 * Images made in the background (`POST /v1/images/generations/async` and `…/edits/async`): a task
 * is a job of its own kind. SiliconFlow's image call is synchronous, so the instance that makes
 * the call runs the task itself ({@link JobPoller.runHere}) and writes its end; the poller of
 * every instance only fails a task whose instance is gone (its lease lapsed with its heartbeat),
 * or one past its deadline. What is kept is the answer with the stored images' links, never
 * their bytes.
 * @module
 */
import { timeLimit } from "../time_limit.ts";
import { randomToken } from "../values.ts";
import type { JobKind, JobPoller } from "./poller.ts";
import type { JobRecord, JobStore } from "./store.ts";
import { type Callback, webhookDue, type Webhooks } from "./webhook.ts";

/** OpenAI's error object, as the synchronous route would have answered it. */
export interface TaskError {
  /** A human-readable message. */
  message: string;
  /** The error category. */
  type: string;
  /** The request field at fault. */
  param: string | null;
  /** A machine-readable code. */
  code: string;
}

/** An image task. */
export interface ImageTask extends JobRecord {
  /** Which route it came to. */
  endpoint: "generations" | "edits";
  /** The model that makes it. */
  model: string;
  /** How the result's images are given: links, or base64 read from the store when collected. */
  responseFormat: "url" | "b64_json";
  /** When it can no longer be collected, ms since the epoch. */
  expires: number;
  /** Once completed: the synchronous route's answer, its images as lasting links. */
  result?: { created: number; data: { url: string }[]; [field: string]: unknown };
  /** Once failed: the synchronous route's error. */
  error?: TaskError;
  /** The webhook to send when it ends (`callback_url`). */
  callback?: Callback;
}

/** The error of a task whose instance stopped while SiliconFlow worked on it. */
function interrupted(): Partial<ImageTask> {
  return {
    status: "failed",
    error: {
      message:
        "The server instance making this image stopped before it finished; nothing was charged to your quota. Submit the task again.",
      type: "server_error",
      param: null,
      code: "task_interrupted",
    },
  };
}

/** The error of a task not done by its deadline. */
export function timedOut(): TaskError {
  return {
    message: "The image was not made within the server's time limit. Submit the task again.",
    type: "timeout_error",
    param: null,
    code: "task_timeout",
  };
}

/** What sending a task's webhook takes. */
export interface TaskHooks {
  webhooks: Webhooks;
  /** A task as the API shows it, with its links on `base` (the webhook's `data`). */
  describe: (task: ImageTask, base: string) => Promise<unknown>;
  now: () => number;
}

/**
 * The image task kind: what the poller does with a task it took over (it fails it), and the
 * webhook of a task that ended.
 */
export class ImageTaskKind implements JobKind<ImageTask> {
  readonly store: JobStore<ImageTask>;
  readonly #hooks?: TaskHooks;

  constructor(store: JobStore<ImageTask>, hooks?: TaskHooks) {
    this.store = store;
    this.#hooks = hooks;
  }

  /** A task this instance took over had its instance stop: nobody can finish it now. */
  check(task: ImageTask): Promise<Partial<ImageTask>> {
    return Promise.resolve({ ...interrupted(), ...webhookDue(task, this.#now()) });
  }

  #now(): number {
    return this.#hooks?.now() ?? Date.now();
  }

  /** Sends an ended task's webhook. */
  async followUp(task: ImageTask, signal: AbortSignal): Promise<Partial<ImageTask>> {
    const hooks = this.#hooks;
    if (!hooks || !hooks.webhooks.due(task)) return { followUp: undefined };
    const data = await hooks.describe(task, task.callback.base);
    const sent = await hooks.webhooks.send(task, `image.task.${task.status}`, data, signal);
    return { followUp: undefined, ...sent };
  }

  discard(): Promise<void> {
    return Promise.resolve();
  }

  expired(task: ImageTask): Partial<ImageTask> {
    return { status: "failed", error: timedOut(), ...webhookDue(task, this.#now()) };
  }

  /** The quota of a task is settled by the instance that runs it, or given back when it dies. */
  settle(): Promise<void> {
    return Promise.resolve();
  }
}

/** What a task's work answers: its end, completed or failed. */
export type TaskEnd = Pick<ImageTask, "result" | "error">;

/** The image tasks of this server: submitting one, running it here, and reading them. */
export class ImageTasks {
  readonly jobs: JobStore<ImageTask>;
  readonly poller: JobPoller<ImageTask>;
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #timeoutMs: number;
  /**
   * The tasks running here, as this instance last wrote them: a poll of one is answered from
   * memory (clients poll every few seconds while SiliconFlow works), a KV read otherwise.
   */
  readonly #here = new Map<string, ImageTask>();

  constructor(deps: {
    jobs: JobStore<ImageTask>;
    poller: JobPoller<ImageTask>;
    now: () => number;
    /** How long a task can be collected (`IMAGE_TASK_TTL_MS`). */
    ttlMs: number;
    /** How long its work may run before a scan fails it. */
    timeoutMs: number;
  }) {
    this.jobs = deps.jobs;
    this.poller = deps.poller;
    this.#now = deps.now;
    this.#ttlMs = deps.ttlMs;
    this.#timeoutMs = deps.timeoutMs;
  }

  /**
   * Keeps a new task (its lease this instance's) and runs `work` here: `work` gets a signal that
   * aborts at the task's deadline, and `started` to call once it holds a generation slot; what it
   * answers (or throws, as the error it stands for) ends the task.
   */
  async submit(
    task: Pick<
      ImageTask,
      "owner" | "account" | "endpoint" | "model" | "responseFormat" | "callback"
    >,
    work: (signal: AbortSignal, started: () => Promise<void>) => Promise<TaskEnd>,
    signal: AbortSignal,
  ): Promise<ImageTask> {
    const created = this.jobs.newCreated();
    const record: ImageTask = {
      ...task,
      id: `imgtask_${randomToken(18)}`,
      status: "queued",
      created,
      deadline: created + this.#timeoutMs,
      expires: created + this.#ttlMs,
      clientKey: false,
    };
    await this.jobs.create(record, this.poller.holder);
    const { id } = record;
    this.#here.set(id, record);
    const write = async (change: Partial<ImageTask>) => {
      const { job } = await this.poller.write(id, change);
      if (job) this.#here.set(id, job);
    };
    this.poller.runHere(id, async () => {
      const limit = timeLimit(this.#timeoutMs, signal);
      try {
        const end = await work(limit.signal, () => write({ status: "in_progress" }));
        const ended = { status: end.error ? "failed" as const : "completed" as const, ...end };
        await write({ ...ended, ...webhookDue(record, this.#now()) });
      } finally {
        limit.clear();
        this.#here.delete(id);
      }
      // Its webhook, if any, goes out as the poller's follow-up (tried again, taken over if need be).
      if (record.callback) this.poller.hold(id, undefined, 0);
    });
    return record;
  }

  /** A task, ended if it is past its deadline; undefined once gone or expired. */
  async get(id: string): Promise<ImageTask | undefined> {
    const task = this.#here.get(id) ?? await this.jobs.get(id);
    if (!task || this.#now() > task.expires) return undefined;
    return await this.poller.endIfLate(task);
  }
}
