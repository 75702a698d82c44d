/**
 * Time limits for work of one request. `AbortSignal.any([signal, AbortSignal.timeout(ms)])` would
 * say the same in one line, but a timeout signal stays alive (about 1.3 KB, measured) until its
 * time is up even when the work is long done: at thousands of requests a second under a 180 s
 * upstream timeout that is hundreds of megabytes. And each platform timer is a Node-compatible
 * `Timeout` object in Deno 2.9, about 10 µs to set and clear. So limits of one length share one
 * queue with one platform timer ({@link after}): they expire in the order they were set, a
 * cancelled one is forgotten at once, and the queue is compacted as it goes.
 * @module
 */

interface Pending {
  at: number;
  fire: (() => void) | undefined;
}

/** The limits of one length: they expire in the order they were set. */
class TimerQueue {
  #ms: number;
  #entries: Pending[] = [];
  #head = 0;
  #cancelled = 0;
  #live = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(ms: number) {
    this.#ms = ms;
  }

  add(fire: () => void): () => void {
    const entry: Pending = { at: performance.now() + this.#ms, fire };
    this.#entries.push(entry);
    this.#live++;
    if (this.#timer === undefined) this.#arm(entry.at);
    return () => {
      if (!entry.fire) return;
      entry.fire = undefined;
      // With nothing left to wait for, the armed timer is left to fire on an empty queue: under
      // load the queue empties and fills all the time, and re-arming each time would cost more
      // than a wake-up. (The timer is unref'd: it never keeps the process up.)
      if (--this.#live === 0) return this.#empty();
      // Cancelled entries are dropped when the queue holds more of them than of live ones.
      if (++this.#cancelled > 64 && this.#cancelled * 2 > this.#entries.length - this.#head) {
        this.#entries = this.#entries.slice(this.#head).filter((e) => e.fire);
        this.#head = 0;
        this.#cancelled = 0;
      }
    };
  }

  #empty(): void {
    this.#entries = [];
    this.#head = 0;
    this.#cancelled = 0;
  }

  #arm(at: number): void {
    const timer = setTimeout(() => this.#run(), Math.max(0, at - performance.now()));
    unref(timer);
    this.#timer = timer;
  }

  #run(): void {
    this.#timer = undefined;
    const now = performance.now();
    const entries = this.#entries;
    const due: (() => void)[] = [];
    while (this.#head < entries.length) {
      const entry = entries[this.#head];
      if (entry.fire && entry.at > now) break;
      this.#head++;
      if (!entry.fire) {
        this.#cancelled = Math.max(0, this.#cancelled - 1);
        continue;
      }
      due.push(entry.fire);
      entry.fire = undefined;
      this.#live--;
    }
    // The queue is put in order before any callback runs (one may set or cancel limits).
    if (this.#live === 0) this.#empty();
    else {
      if (this.#head > 1024 && this.#head * 2 > entries.length) {
        this.#entries = entries.slice(this.#head);
        this.#head = 0;
      }
      this.#arm(this.#entries[this.#head].at);
    }
    for (const fire of due) fire();
  }
}

/**
 * Calls `fire` once, `ms` milliseconds from now; it cannot be cancelled, and keeps the process up
 * until then. For the few timers of start-up and of the log writer: the first `setTimeout` of a
 * process loads Deno's Node-compatible timers, about 15 ms (measured), which would otherwise land
 * between start-up and the first answer. (`AbortSignal.timeout` runs on the web timers.)
 */
export function soon(ms: number, fire: () => void): void {
  AbortSignal.timeout(ms).addEventListener("abort", fire, { once: true });
}

/**
 * Loads Deno's Node-compatible timers ahead of the first request that sets a limit (see
 * {@link soon}); called once the server has answered its first requests.
 */
export function warmTimers(): void {
  unref(setTimeout(() => {}, 0));
}

/** Lets the process exit while the timer is pending. */
function unref(timer: ReturnType<typeof setTimeout>): void {
  const node = timer as unknown as { unref?: () => void };
  if (typeof node.unref === "function") node.unref();
  else Deno.unrefTimer(timer as unknown as number);
}

const queues = new Map<number, TimerQueue>();

/**
 * Calls `fire` once `ms` milliseconds have passed, unless the returned function is called first.
 * Limits of one length share one queue and one platform timer.
 */
export function after(ms: number, fire: () => void): () => void {
  let queue = queues.get(ms);
  if (!queue) queues.set(ms, queue = new TimerQueue(ms));
  return queue.add(fire);
}

/** A signal that aborts after `ms`, or when `parent` does; call `clear()` when the work ends. */
export interface Deadline {
  /** Aborts at the deadline or with the parent. */
  readonly signal: AbortSignal;
  /** Whether the time ran out (rather than the parent aborting). */
  timedOut(): boolean;
  /** Stops the timer and forgets the parent. */
  clear(): void;
}

/** What follows a signal: told when it aborts. (The shape of an event-listener object.) */
export interface SignalFollower {
  /** The signal aborted. */
  handleEvent(): void;
}

/**
 * What aborts a signal and tells its followers directly. An abort listener costs a few hundred
 * bytes (the signal's listener table, the listener and its options: about 0.3 KB per held stream,
 * measured), and a held stream's upstream call follows the request's signal for tens of seconds.
 */
export interface SignalSource {
  /** Tells `follower` when the signal aborts. */
  follow(follower: SignalFollower): void;
  /** Stops telling it. */
  unfollow(follower: SignalFollower): void;
}

const sources = new WeakMap<AbortSignal, SignalSource>();

/** Says that `source` aborts `signal` and tells its followers: deadlines follow it directly. */
export function linkSource(signal: AbortSignal, source: SignalSource): void {
  sources.set(signal, source);
}

/** Starts a deadline of `ms` milliseconds, joined with `parent` when given. */
export function deadline(ms: number, parent?: AbortSignal): Deadline {
  return new TimeLimit(ms, parent);
}

/** A {@link Deadline}: one object (an upstream call holds one for as long as it waits). */
class TimeLimit implements Deadline, SignalFollower {
  #controller = new AbortController();
  #parent: AbortSignal | undefined;
  #source: SignalSource | undefined;
  #expired = false;
  #cancel: () => void;

  constructor(ms: number, parent?: AbortSignal) {
    this.#cancel = after(ms, () => {
      this.#expired = true;
      this.#controller.abort(new DOMException("deadline exceeded", "TimeoutError"));
    });
    if (parent?.aborted) this.#controller.abort(parent.reason);
    else if (parent) {
      this.#parent = parent;
      this.#source = sources.get(parent);
      if (this.#source) this.#source.follow(this);
      else parent.addEventListener("abort", this, { once: true });
    }
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  timedOut(): boolean {
    return this.#expired;
  }

  clear(): void {
    this.#cancel();
    if (this.#source) this.#source.unfollow(this);
    else this.#parent?.removeEventListener("abort", this);
  }

  /** The parent aborted. */
  handleEvent(): void {
    this.#controller.abort(this.#parent?.reason);
  }
}
