/**
 * Counts failed attempts per client address in fixed windows and says when an address must wait.
 * Bounded: at most `maxAddresses` addresses are tracked (least recently failing dropped first), so a
 * flood from many addresses costs memory in proportion to that bound, not to the flood.
 */
import { LRUCache } from 'lru-cache';

export interface AttemptLimiterOptions {
  /** Failures allowed per address per window; the next attempt waits for the window to end. */
  maxFailures: number;
  windowMs: number;
  maxAddresses: number;
  now?: () => number;
}

interface Window {
  failures: number;
  endsAt: number;
}

export class AttemptLimiter {
  readonly #windows: LRUCache<string, Window>;
  readonly #now: () => number;

  constructor(private readonly opts: AttemptLimiterOptions) {
    this.#windows = new LRUCache({ max: opts.maxAddresses });
    this.#now = opts.now ?? Date.now;
  }

  /** Milliseconds `address` must still wait, or 0 if it may try now. */
  blockedForMs(address: string): number {
    const w = this.#windows.peek(address);
    if (w === undefined) return 0;
    const left = w.endsAt - this.#now();
    if (left <= 0) {
      this.#windows.delete(address);
      return 0;
    }
    return w.failures >= this.opts.maxFailures ? left : 0;
  }

  recordFailure(address: string): void {
    const now = this.#now();
    const w = this.#windows.get(address);
    if (w === undefined || w.endsAt <= now) this.#windows.set(address, { failures: 1, endsAt: now + this.opts.windowMs });
    else w.failures++;
  }

  /** Addresses tracked (for tests and metrics). */
  get size(): number {
    return this.#windows.size;
  }
}
