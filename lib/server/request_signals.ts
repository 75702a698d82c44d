/**
 * Each request's abort signal: it aborts when the client goes away or when the server's shutdown
 * grace runs out. `AbortSignal.any([request.signal, shutdownSignal])` says the same, but it hangs
 * every request's signal on the one long-lived shutdown signal through weak references, which the
 * engine keeps alive at least until the current task ends (measured: 1.3 KB per request held by a
 * tight loop of in-process requests) and which cost about 4 µs each. Here the live requests are a
 * plain set that shutdown walks once, and a request leaves it when it is done.
 * @module
 */

/** The abort signals of the requests of one server. */
export class RequestSignals {
  #live = new Set<AbortController>();
  #shutdown: AbortSignal;

  /** Signals made from here abort with `shutdown`. */
  constructor(shutdown: AbortSignal) {
    this.#shutdown = shutdown;
    shutdown.addEventListener("abort", () => {
      for (const controller of this.#live) controller.abort(shutdown.reason);
      this.#live.clear();
    }, { once: true });
  }

  /** Requests whose signal is live. */
  get size(): number {
    return this.#live.size;
  }

  /**
   * A signal for `request`, made when first asked for; `done()` forgets it once the request has
   * been answered (its stream included).
   */
  lazy(request: Request): { readonly signal: AbortSignal; done(): void } {
    let controller: AbortController | undefined;
    const live = this.#live;
    const shutdown = this.#shutdown;
    return {
      get signal() {
        if (controller) return controller.signal;
        const made = controller = new AbortController();
        if (shutdown.aborted) made.abort(shutdown.reason);
        else if (request.signal.aborted) made.abort(request.signal.reason);
        else {
          live.add(made);
          request.signal.addEventListener("abort", () => {
            live.delete(made);
            made.abort(request.signal.reason);
          }, { once: true });
        }
        return made.signal;
      },
      done() {
        if (controller) live.delete(controller);
      },
    };
  }
}
