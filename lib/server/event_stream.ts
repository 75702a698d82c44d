/**
 * The life of a streamed answer, apart from what it says: keep-alive events on a timer, the
 * producer aborted at once when the client goes (a real `cancel()`, not a generator that would
 * notice only at its next `yield`), failures turned into a last event, the count of open streams,
 * and the final status for the log line.
 *
 * Events wait unencoded until the connection pulls them, then go into the byte stream in one
 * chunk.
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
  /** The request the stream answers: its signal, and how to abort it. */
  owner: StreamOwner;
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

/** The request a stream answers. */
export interface StreamOwner {
  /** The producer's signal: aborts when the client goes away or the shutdown grace runs out. */
  readonly signal: AbortSignal;
  /** Aborts `signal`: called when the client cancels the stream. */
  abort(): void;
}

/** A streamed answer and a promise of its final status, once it has ended. */
export interface EventStreamAnswer {
  /** The `text/event-stream` response. */
  response: Response;
  /** The final status: 200, the failure's, or 499 when the client left. */
  done: Promise<number>;
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
 * is sent first once the stream opens.
 */
export async function eventStreamResponse<E>(
  produce: (sink: EventSink<E>, signal: AbortSignal) => Promise<void>,
  options: EventStreamOptions<E>,
): Promise<EventStreamAnswer> {
  const stream = new EventStream(options);
  const done = stream.follow(produce(stream, options.owner.signal));
  const holdMs = Math.min(options.holdMs ?? 0, options.keepAliveMs);
  if (holdMs > 0) await stream.hold(holdMs);
  stream.open();
  const response = new Response(new ReadableStream<Uint8Array>(stream, { highWaterMark: 0 }), {
    headers: {
      ...options.headers,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
  return { response, done };
}

/**
 * One held stream: the producer's sink, the body's underlying source, and its keep-alive, in one
 * object (thousands are held at once, for tens of seconds each), with one reaction to the
 * producer's end.
 */
class EventStream<E> implements EventSink<E>, UnderlyingDefaultSource<Uint8Array> {
  #options: EventStreamOptions<E>;
  #started: number;
  // Events wait here, unencoded, until the connection takes them (the stream is pulled).
  #queue: E[] = [];
  #opened = false;
  #ended = false;
  #gone = false;
  #wake: (() => void) | undefined;
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  // While the headers are held: ends the hold, with the producer's failure if it failed.
  #unhold: ((failure?: { err: unknown }) => void) | undefined;

  constructor(options: EventStreamOptions<E>) {
    this.#options = options;
    this.#started = options.now();
  }

  send(event: E): void {
    if (this.#gone) return;
    this.#queue.push(event);
    this.#wake?.();
  }

  elapsedS(): number {
    return Math.round((this.#options.now() - this.#started) / 1000);
  }

  /** The final status, once the producer has ended. */
  follow(running: Promise<void>): Promise<number> {
    return running.then(() => this.#end(200), (err) => {
      if (this.#unhold) {
        this.#unhold({ err });
        return 0; // the stream never opens: its failure is thrown instead
      }
      const { events, status } = this.#options.onError(err);
      for (const event of events) this.send(event);
      return this.#end(status);
    });
  }

  /** Holds the headers for up to `ms`; throws the producer's failure within that time. */
  hold(ms: number): Promise<void> {
    if (this.#ended) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#unhold?.(), ms);
      this.#unhold = (failure) => {
        this.#unhold = undefined;
        clearTimeout(timer);
        if (failure) reject(failure.err);
        else resolve();
      };
    });
  }

  /** The stream opens: keep-alives start, unless the producer has already ended. */
  open(): void {
    this.#opened = true;
    if (this.#ended) return;
    this.#options.open.count++;
    this.#keepAlive = setInterval(
      () => this.send(this.#options.keepAlive(this.elapsedS())),
      this.#options.keepAliveMs,
    );
  }

  #end(status: number): number {
    const options = this.#options;
    this.#ended = true;
    this.#unhold?.();
    if (this.#opened) {
      clearInterval(this.#keepAlive);
      options.open.count--;
    }
    this.#wake?.();
    return options.owner.signal.aborted && !options.shutdownSignal.aborted ? CLIENT_CLOSED : status;
  }

  /** Encodes what waits into the stream; closes it once the producer has ended. */
  #drain(c: ReadableStreamDefaultController<Uint8Array>): void {
    const { encoder } = this.#options;
    let text = "";
    for (const event of this.#queue) text += encoder.encode(event) ?? "";
    this.#queue.length = 0;
    if (this.#ended && !this.#gone && !this.#options.owner.signal.aborted) {
      text += encoder.end?.() ?? "";
    }
    try {
      if (text) c.enqueue(utf8.encode(text));
      if (this.#ended) c.close();
    } catch {
      // The client has gone; cancel() below has already aborted the producer.
    }
  }

  pull(c: ReadableStreamDefaultController<Uint8Array>): void | Promise<void> {
    if (this.#queue.length || this.#ended) return this.#drain(c);
    return new Promise<void>((resolve) => {
      this.#wake = () => {
        this.#wake = undefined;
        this.#drain(c);
        resolve();
      };
    });
  }

  cancel(): void {
    this.#gone = true;
    this.#wake = undefined;
    this.#queue.length = 0;
    clearInterval(this.#keepAlive);
    this.#options.owner.abort();
  }
}
