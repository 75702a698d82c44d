/**
 * The life of a streamed answer, apart from what it says: keep-alive events on a timer, the
 * producer aborted at once when the client goes (a real `cancel()`, not a generator that would
 * notice only at its next `yield`), failures turned into a last event, the count of open streams,
 * and the final status for the log line.
 * @module
 */
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
  /** How often a keep-alive event is sent while the producer works. */
  keepAliveMs: number;
  /** The keep-alive event, given the seconds so far. */
  keepAlive: (elapsedS: number) => E;
  /**
   * The request the stream answers: its signal aborts when the client goes away or the shutdown
   * grace runs out, and `abort()` aborts it (the client cancelled the stream).
   */
  owner: { readonly signal: AbortSignal; abort(): void };
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

/** What the producer of a stream writes to. */
export interface EventSink<E> {
  /** Sends one event (dropped once the client has gone). */
  send(event: E): void;
  /** Whole seconds since the stream began. */
  elapsedS(): number;
}

/**
 * Streams what `produce` sends. `produce` gets the sink to send to and the signal that aborts
 * when the client goes; its result ends the stream, and a failure becomes the last events.
 *
 * With `holdMs`, the response is held back for up to that long (never longer than the keep-alive
 * interval): a failure within it is thrown, so the client gets a real HTTP error with its status
 * and `Retry-After` instead of a 200 stream that carries the error. What `produce` sent meanwhile
 * is sent first once the stream opens. `done` resolves with the final status once the stream has
 * ended: 200, the failure's, or 499 when the client left.
 */
export async function eventStreamResponse<E>(
  produce: (sink: EventSink<E>, signal: AbortSignal) => Promise<void>,
  options: EventStreamOptions<E>,
): Promise<{ response: Response; done: Promise<number> }> {
  const { encoder, owner, now } = options;
  const started = now();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let gone = false;
  const write = (frame: string | undefined) => {
    if (!frame || gone) return;
    try {
      controller.enqueue(utf8.encode(frame));
    } catch {
      // Closed: the client has gone.
    }
  };
  const sink: EventSink<E> = {
    send: (event) => write(encoder.encode(event)),
    elapsedS: () => Math.round((now() - started) / 1000),
  };
  const body = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
    // The client cancels only once the response (made after the keep-alive below) is out.
    cancel: () => {
      gone = true;
      clearInterval(keepAlive);
      owner.abort();
    },
  });
  // The producer's end: undefined when it finished, its failure otherwise.
  const ended = produce(sink, owner.signal).then(() => undefined, (err) => ({ err }));

  const holdMs = Math.min(options.holdMs ?? 0, options.keepAliveMs);
  if (holdMs > 0) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const held = new Promise<"open">((resolve) => timer = setTimeout(resolve, holdMs, "open"));
    const early = await Promise.race([ended, held]);
    clearTimeout(timer);
    if (early && early !== "open") throw early.err;
  }

  options.open.count++;
  const keepAlive = setInterval(
    () => sink.send(options.keepAlive(sink.elapsedS())),
    options.keepAliveMs,
  );
  const done = ended.then((failure) => {
    clearInterval(keepAlive);
    options.open.count--;
    let status = 200;
    if (failure) {
      const last = options.onError(failure.err);
      for (const event of last.events) sink.send(event);
      status = last.status;
    }
    const left = owner.signal.aborted && !options.shutdownSignal.aborted;
    if (!owner.signal.aborted) write(encoder.end?.());
    try {
      controller.close();
    } catch {
      // Already cancelled by the client.
    }
    return left ? CLIENT_CLOSED : status;
  });
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
