/**
 * The instance's generation slots (`MAX_CONCURRENCY`): a request takes one for the time its
 * SiliconFlow calls run, or is answered 429 at once rather than queued without bound.
 * @module
 */
import { ApiError } from "../server/errors.ts";

/** A fixed number of slots for generations in flight. */
export class GenerationSlots {
  #max: number;
  #busy: string;
  #inFlight = 0;

  /** Creates `max` slots; `busy` says what fills them, in the 429's message. */
  constructor(max: number, busy = "generations are already running") {
    this.#max = max;
    this.#busy = busy;
  }

  /** Generations holding a slot now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Takes a slot, or throws a 429; call the returned function once to give it back. */
  acquire(): () => void {
    if (this.#inFlight >= this.#max) {
      throw new ApiError(
        429,
        `This server is busy: ${this.#max} ${this.#busy}. Retry shortly.`,
        { code: "server_busy", headers: { "retry-after": "2" } },
      );
    }
    this.#inFlight++;
    let released = false;
    return () => {
      if (!released) this.#inFlight--;
      released = true;
    };
  }
}
