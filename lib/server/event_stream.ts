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
 * client goes; its result ends the stream, and a failure becomes the last event.
 */
export function eventStreamResponse<E>(
  produce: (send: (event: E) => void, signal: AbortSignal, elapsedS: () => number) => Promise<void>,
  options: EventStreamOptions<E>,
): EventStreamAnswer {
  const abort = new AbortController();
  const onGone = () => abort.abort();
  options.signal.addEventListener("abort", onGone, { once: true });
  options.open.count++;
  const started = options.now();
  const elapsedS = () => Math.round((options.now() - started) / 1000);
  let timer: ReturnType<typeof setInterval> | undefined;
  let finish!: (status: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));

  const source = new ReadableStream<E>({
    start(controller) {
      const send = (event: E) => {
        try {
          controller.enqueue(event);
        } catch {
          // The client has gone; cancel() below has already aborted the producer.
        }
      };
      timer = setInterval(
        () => send(options.keepAlive.event(elapsedS())),
        options.keepAlive.everyMs,
      );
      produce(send, abort.signal, elapsedS).then(
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
          controller.close();
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
