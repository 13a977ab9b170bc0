/**
 * A bound on how many of one kind of costly work (password hashes) run at once, with a short, bounded
 * wait queue that serves its keys (client addresses) in turn: one address with many waiting costs
 * another address at most one turn per slot, not a place behind all of them. Work past the queue's
 * bound, past a key's share of it, or waiting longer than `maxWaitMs` is refused with BusyError, so a
 * burst costs the hub bounded CPU and memory and the caller can answer 429 with Retry-After at once.
 */

export interface FairSemaphoreOptions {
  /** Work running at once. */
  maxConcurrent: number;
  /** Work waiting at once, all keys together (0: no waiting; refused when every slot is taken). */
  maxQueued: number;
  /** Longest a piece of work waits for a slot before it is refused. */
  maxWaitMs: number;
  /** Waiting work one key may hold; a quarter of maxQueued (at least 1) by default. */
  maxQueuedPerKey?: number;
}

/** Refused: every slot and the queue (or this key's share of it) are taken, or the wait ran out. */
export class BusyError extends Error {
  override readonly name = 'BusyError';
  constructor(
    message: string,
    /** When trying again is worth it. */
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

interface Waiter {
  start: () => void;
  timer: NodeJS.Timeout;
}

export class FairSemaphore {
  #running = 0;
  #queued = 0;
  /** Waiters per key; Map order is the turn order of the keys. */
  readonly #queues = new Map<string, Waiter[]>();
  readonly #perKey: number;

  constructor(private readonly opts: FairSemaphoreOptions) {
    this.#perKey = opts.maxQueuedPerKey ?? Math.max(1, Math.floor(opts.maxQueued / 4));
  }

  /** Runs `work` once a slot is free; throws BusyError (without running it) when it cannot wait. */
  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    if (this.#running >= this.opts.maxConcurrent) await this.#wait(key);
    else this.#running++;
    try {
      return await work();
    } finally {
      this.#next();
    }
  }

  #wait(key: string): Promise<void> {
    const queue = this.#queues.get(key);
    if (this.#queued >= this.opts.maxQueued || (queue?.length ?? 0) >= this.#perKey) {
      return Promise.reject(new BusyError('too much work waiting', this.#retryAfterMs()));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        start: () => {
          clearTimeout(waiter.timer);
          resolve();
        },
        timer: setTimeout(() => {
          this.#remove(key, waiter);
          reject(new BusyError('waited too long', this.#retryAfterMs()));
        }, this.opts.maxWaitMs),
      };
      if (queue) queue.push(waiter);
      else this.#queues.set(key, [waiter]);
      this.#queued++;
    });
  }

  #remove(key: string, waiter: Waiter): void {
    const queue = this.#queues.get(key);
    const i = queue?.indexOf(waiter) ?? -1;
    if (i < 0) return;
    queue!.splice(i, 1);
    this.#queued--;
    if (queue!.length === 0) this.#queues.delete(key);
  }

  /** A slot was freed: hand it to the next key in turn (its oldest waiter), else give it back. */
  #next(): void {
    const first = this.#queues.entries().next();
    if (first.done === true) {
      this.#running--;
      return;
    }
    const [key, queue] = first.value;
    const waiter = queue.shift()!;
    this.#queued--;
    // The key goes to the back of the turn order, or leaves it when it has no one left waiting.
    this.#queues.delete(key);
    if (queue.length > 0) this.#queues.set(key, queue);
    waiter.start(); // the slot passes on: #running stays as it is
  }

  /** By then the work waiting now has started or been refused: the longest wait, at least a second (Retry-After's unit). */
  #retryAfterMs(): number {
    return Math.max(1000, Math.min(this.opts.maxWaitMs, 60_000));
  }

  /** Work running now. */
  get running(): number {
    return this.#running;
  }

  /** Work waiting now. */
  get queued(): number {
    return this.#queued;
  }
}
