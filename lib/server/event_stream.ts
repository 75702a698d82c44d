/**
 * The life of a streamed answer, apart from what it says: keep-alive events on a timer, the
 * producer aborted at once when the client goes (a real `cancel()`, not a generator that would
 * notice only at its next `yield`), failures turned into a last event, the count of open streams,
 * and the final status for the log line.
 *
 * Thousands of streams may be held at once (generations take tens of seconds), so each costs as
 * little as it can: events wait unencoded until the connection pulls them, then go into the one
 * byte stream in a single chunk (no `TransformStream` behind it), and the keep-alives of all
 * streams share one timer queue (`deadline.ts`).
 * @module
 */
import { after } from "./deadline.ts";
import { CLIENT_CLOSED } from "./errors.ts";

/** Turns a stream's events into server-sent event frames. */
export interface EventEncoder<E> {
  /** The frame of one event, if it has one. */
  encode(event: E): string | undefined;
  /** The last frame, once the stream has ended without the client leaving (`[DONE]`). */
  end?(): string | undefined;
}

const utf8 = new TextEncoder();

/** Options of {@link eventStreamResponse}. */
export interface EventStreamOptions<E> {
  /** Turns the events into frames (and ends the stream properly). */
  encoder: EventEncoder<E>;
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
  const { encoder } = options;
  const abort = new AbortController();
  const onGone = () => abort.abort();
  options.signal.addEventListener("abort", onGone, { once: true });
  const started = options.now();
  const elapsedS = () => Math.round((options.now() - started) / 1000);
  // Events wait here, unencoded, until the connection takes them (the stream is pulled).
  const queue: E[] = [];
  let ended = false;
  let gone = false;
  let wake: (() => void) | undefined;
  const send = (event: E) => {
    if (gone) return;
    queue.push(event);
    wake?.();
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
  let stopKeepAlive: (() => void) | undefined;
  const keepAlive = () => {
    send(options.keepAlive.event(elapsedS()));
    stopKeepAlive = after(options.keepAlive.everyMs, keepAlive);
  };
  stopKeepAlive = after(options.keepAlive.everyMs, keepAlive);
  const done = running.then(
    () => 200,
    (err) => {
      const { events, status } = options.onError(err);
      for (const event of events) send(event);
      return status;
    },
  ).then((status) => {
    stopKeepAlive?.();
    options.signal.removeEventListener("abort", onGone);
    options.open.count--;
    ended = true;
    wake?.();
    return abort.signal.aborted && !options.shutdownSignal.aborted ? CLIENT_CLOSED : status;
  });
  /** Encodes what waits into the stream; closes it once the producer has ended. */
  const drain = (c: ReadableStreamDefaultController<Uint8Array>) => {
    const frames: string[] = [];
    for (const event of queue.splice(0)) {
      const frame = encoder.encode(event);
      if (frame !== undefined) frames.push(frame);
    }
    const last = ended && !abort.signal.aborted ? encoder.end?.() : undefined;
    if (last !== undefined) frames.push(last);
    try {
      if (frames.length) c.enqueue(utf8.encode(frames.join("")));
      if (ended) c.close();
    } catch {
      // The client has gone; cancel() below has already aborted the producer.
    }
  };
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (queue.length || ended) return drain(c);
      return new Promise<void>((resolve) => {
        wake = () => {
          wake = undefined;
          drain(c);
          resolve();
        };
      });
    },
    cancel() {
      gone = true;
      wake = undefined;
      queue.length = 0;
      abort.abort();
      stopKeepAlive?.();
    },
  }, { highWaterMark: 0 });
  const response = new Response(body, {
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
  let cancel: (() => void) | undefined;
  const outcome = await Promise.race([
    work.then(() => undefined, (err) => ({ err })),
    new Promise<undefined>((resolve) => (cancel = after(ms, () => resolve(undefined)))),
  ]);
  cancel?.();
  return outcome;
}
