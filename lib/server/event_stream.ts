/**
 * The life of a streamed answer, apart from what it says: keep-alive events on a timer, the
 * producer aborted at once when the client goes (a real `cancel()`, not a generator that would
 * notice only at its next `yield`), failures turned into a last event, the count of open streams,
 * and the final status for the log line.
 * @module
 */
import { CLIENT_CLOSED } from "./errors.ts";

/** Options of {@link eventStreamResponse}. */
export interface EventStreamOptions<E> {
  /** Turns the events into bytes (and ends the stream properly). */
  encoder: TransformStream<E, Uint8Array>;
  /** A keep-alive event every `everyMs` while the producer works; `event` gets the seconds so far. */
  keepAlive: { everyMs: number; event: (elapsedS: number) => E };
  /** Aborts the producer: the client went away, or the server's shutdown grace ran out. */
  signal: AbortSignal;
  /** Aborted when the shutdown grace ran out (an abort then is not the client's doing). */
  shutdownSignal: AbortSignal;
  /** The last events (none when the client has gone) and the status for a failure. */
  onError: (err: unknown) => { events: E[]; status: number };
  /** The clock. */
  now: () => number;
  /** The instance's count of open streams. */
  open: { count: number };
  /** Extra response headers. */
  headers?: Record<string, string>;
  /** How long the headers may wait for an early failure (`STREAM_HOLD_MS`); 0 sends them at once. */
  holdMs?: number;
}

/** A streamed answer and a promise of its final status, once it has ended. */
export interface EventStreamAnswer {
  /** The `text/event-stream` response. */
  response: Response;
  /** The final status: 200, the failure's, or 499 when the client left. */
  done: Promise<number>;
}

/**
 * Streams what `produce` sends. `produce` gets a `send` function and a signal that aborts when the
 * client goes; its result ends the stream, and a failure becomes the last events.
 *
 * With `holdMs`, the response is held back for up to that long (never longer than the keep-alive
 * interval): a failure within it is thrown, so the client gets a real HTTP error with its status
 * and `Retry-After` instead of a 200 stream that carries the error. What `produce` sent meanwhile
 * is sent first once the stream opens.
 */
export async function eventStreamResponse<E>(
  produce: (send: (event: E) => void, signal: AbortSignal, elapsedS: () => number) => Promise<void>,
  options: EventStreamOptions<E>,
): Promise<EventStreamAnswer> {
  const abort = new AbortController();
  const onGone = () => abort.abort();
  options.signal.addEventListener("abort", onGone, { once: true });
  const started = options.now();
  const elapsedS = () => Math.round((options.now() - started) / 1000);
  let controller: ReadableStreamDefaultController<E> | undefined;
  const early: E[] = [];
  const send = (event: E) => {
    if (!controller) return void early.push(event);
    try {
      controller.enqueue(event);
    } catch {
      // The client has gone; cancel() below has already aborted the producer.
    }
  };
  const running = produce(send, abort.signal, elapsedS);
  const holdMs = Math.min(options.holdMs ?? 0, options.keepAlive.everyMs);
  if (holdMs > 0) {
    const failure = await failureWithin(running, holdMs);
    if (failure) {
      options.signal.removeEventListener("abort", onGone);
      throw failure.err;
    }
  }

  options.open.count++;
  let timer: ReturnType<typeof setInterval> | undefined;
  let finish!: (status: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  const source = new ReadableStream<E>({
    start(c) {
      controller = c;
      for (const event of early.splice(0)) c.enqueue(event);
      timer = setInterval(
        () => send(options.keepAlive.event(elapsedS())),
        options.keepAlive.everyMs,
      );
      running.then(
        () => 200,
        (err) => {
          const { events, status } = options.onError(err);
          for (const event of events) send(event);
          return status;
        },
      ).then((status) => {
        clearInterval(timer);
        options.signal.removeEventListener("abort", onGone);
        options.open.count--;
        try {
          c.close();
        } catch {
          // Already cancelled.
        }
        finish(abort.signal.aborted && !options.shutdownSignal.aborted ? CLIENT_CLOSED : status);
      });
    },
    cancel() {
      abort.abort();
      clearInterval(timer);
    },
  });
  const response = new Response(source.pipeThrough(options.encoder), {
    headers: {
      ...options.headers,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
  return { response, done };
}

/** The failure of `work` if it fails within `ms`; undefined if it succeeds or is still running. */
async function failureWithin(
  work: Promise<void>,
  ms: number,
): Promise<{ err: unknown } | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    work.then(() => undefined, (err) => ({ err })),
    new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms))),
  ]);
  clearTimeout(timer);
  return outcome;
}
