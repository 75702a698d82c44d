/**
 * The bytes of request bodies that one instance holds at once, across all requests
 * (`MAX_BODY_BUFFER_BYTES`). `MAX_BODY_BYTES` bounds one body; this bounds their sum, so that many
 * clients that each send a body just under the limit and then stall cannot grow the process
 * without bound. A request that would pass the budget is answered 503 with `Retry-After` at once.
 * @module
 */
import { ApiError } from "./errors.ts";

/** A budget of bytes shared by every request of one instance. */
export class BodyBudget {
  #limit: number;
  #held = 0;

  /** Creates a budget of `limit` bytes. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Bytes held now. */
  get held(): number {
    return this.#held;
  }

  /** Takes `bytes` from the budget, or throws a 503 when they do not fit. */
  take(bytes: number): void {
    if (this.#held + bytes > this.#limit) {
      throw new ApiError(
        503,
        "This server is receiving too many large requests at once. Retry shortly.",
        { code: "server_busy", headers: { "retry-after": "2" } },
      );
    }
    this.#held += bytes;
  }

  /** Gives `bytes` back. */
  give(bytes: number): void {
    this.#held = Math.max(0, this.#held - bytes);
  }
}

/**
 * One request's share of a {@link BodyBudget}: grows as its body arrives (or at once, by its
 * declared length) and is given back in one call when the request is done.
 */
export class BodyShare {
  #budget: BodyBudget;
  #taken = 0;

  /** Creates an empty share of `budget`. */
  constructor(budget: BodyBudget) {
    this.#budget = budget;
  }

  /** Makes the share at least `bytes`; throws a 503 when the budget cannot cover it. */
  grow(bytes: number): void {
    if (bytes <= this.#taken) return;
    this.#budget.take(bytes - this.#taken);
    this.#taken = bytes;
  }

  /** Gives everything back; safe to call more than once. */
  release(): void {
    this.#budget.give(this.#taken);
    this.#taken = 0;
  }
}
