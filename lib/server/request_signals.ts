/**
 * Each request's abort signal: it aborts when the client goes away or when the server's shutdown
 * grace runs out. `AbortSignal.any([request.signal, shutdownSignal])` says the same, but it hangs
 * every request's signal on the one long-lived shutdown signal through weak references, which the
 * engine keeps alive at least until the current task ends (measured: 1.3 KB per request held by a
 * tight loop of in-process requests) and which cost about 4 µs each. Here the live requests are a
 * plain set that shutdown walks once, and a request leaves it when it is done.
 *
 * A request's signal is one small object, its controller made when first asked for: a held
 * stream keeps it for tens of seconds, thousands at a time, so it has no closures of its own (it
 * hears the request's own signal as an event-listener object).
 * @module
 */

import { linkSource, type SignalFollower, type SignalSource } from "./deadline.ts";

/** The abort signals of the requests of one server. */
export class RequestSignals {
  /** The requests whose signal is live. */
  readonly live: Set<RequestSignal> = new Set<RequestSignal>();
  /** The server's shutdown signal. */
  readonly shutdown: AbortSignal;

  /** Signals made from here abort with `shutdown`. */
  constructor(shutdown: AbortSignal) {
    this.shutdown = shutdown;
    shutdown.addEventListener("abort", () => {
      for (const signal of this.live) signal.abort(shutdown.reason);
      this.live.clear();
    }, { once: true });
  }

  /** Requests whose signal is live. */
  get size(): number {
    return this.live.size;
  }

  /**
   * A signal for `request`, made when first asked for; `done()` forgets it once the request has
   * been answered (its stream included).
   */
  lazy(request: Request): RequestSignal {
    return new RequestSignal(this, request);
  }
}

/**
 * One request's signal (see {@link RequestSignals.lazy}). It is the source of its signal, so
 * deadlines joined with it follow it directly ({@link linkSource}).
 */
export class RequestSignal implements SignalSource, SignalFollower {
  #owner: RequestSignals;
  #request: Request;
  #controller: AbortController | undefined;
  #followers: SignalFollower[] | undefined;

  /** A signal for `request`, to be made when first asked for. */
  constructor(owner: RequestSignals, request: Request) {
    this.#owner = owner;
    this.#request = request;
  }

  /** Aborts when the client goes away or the shutdown grace runs out. */
  get signal(): AbortSignal {
    if (this.#controller) return this.#controller.signal;
    const made = this.#controller = new AbortController();
    const { shutdown, live } = this.#owner;
    const theirs = this.#request.signal;
    if (shutdown.aborted) made.abort(shutdown.reason);
    else if (theirs.aborted) made.abort(theirs.reason);
    else {
      live.add(this);
      linkSource(made.signal, this);
      theirs.addEventListener("abort", this, { once: true });
    }
    return made.signal;
  }

  /** Aborts the signal: the client has gone (it cancelled a streamed answer), or shutdown. */
  abort(reason?: unknown): void {
    const controller = this.#controller;
    if (!controller || controller.signal.aborted) return;
    this.#owner.live.delete(this);
    controller.abort(reason);
    const followers = this.#followers;
    this.#followers = undefined;
    for (const follower of followers ?? []) follower.handleEvent();
  }

  /** Tells `follower` when the signal aborts. */
  follow(follower: SignalFollower): void {
    (this.#followers ??= []).push(follower);
  }

  /** Stops telling `follower`. */
  unfollow(follower: SignalFollower): void {
    const at = this.#followers?.indexOf(follower) ?? -1;
    if (at !== -1) this.#followers!.splice(at, 1);
  }

  /** The request's own signal aborted (the listener interface). */
  handleEvent(): void {
    this.abort(this.#request.signal.reason);
  }

  /** Forgets the signal: the request has been answered. */
  done(): void {
    this.#owner.live.delete(this);
  }
}
