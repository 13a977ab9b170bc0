/**
 * Failed-attempt limits, one mechanism for every check a stranger can repeat (passwords, device
 * secrets, factory keys): at most `maxFailures` failures per key in a window of `windowMs`; past that,
 * every attempt is refused until the window ends, before any secret is hashed or looked up.
 *
 * A check reserves its attempt before it starts (`reserve`), and the reservation counts as a failure
 * until the check settles it: a check that awaits (a password hash, a Store lookup, a device's answer)
 * cannot be started more than `maxFailures` times at once, so N concurrent guesses cost at most the
 * limit's worth of checks, not N (issue 12: 1,500 concurrent wrong passwords were all hashed and all
 * answered 401 when the limit was read before the hash and counted after it).
 *
 * Keys live in an LRU of `maxKeys` entries, so an attacker cycling through keys costs a bounded amount
 * of memory (and can at worst push older keys out, which lifts their limit early; it never blocks
 * anyone extra).
 */
import { isIPv6 } from 'node:net';
import { LRUCache } from 'lru-cache';

export interface FailureLimiterOptions {
  /** Failures (and checks in flight) allowed per key per window; the next attempt waits for the window to end. */
  maxFailures: number;
  windowMs: number;
  /** Keys tracked at most (least recently used dropped first). */
  maxKeys: number;
  /** The clock (tests); Date.now by default. A call may also pass its own `now`. */
  now?: () => number;
}

interface Window {
  /** Settled failures in this window. */
  failures: number;
  /** Reservations not settled yet; each counts as a failure until it is. */
  inFlight: number;
  startedAt: number;
}

/** A reserved attempt: settle it once, with what the check found. Later calls do nothing. */
export interface Attempt {
  /** The secret was wrong: the reservation stays, as a failure, until the window ends. */
  failed(): void;
  /** The secret was right: the key's failures are forgotten (other checks still in flight keep counting). */
  succeeded(): void;
  /** Nothing was checked (the hub was busy, the device offline, an error): the reservation is given back. */
  release(): void;
}

/** What `reserve` answers: an attempt to settle, or how long to wait before trying again. */
export type Reservation<A = Attempt> = { attempt: A; retryAfterMs: 0 } | { attempt: undefined; retryAfterMs: number };

/**
 * The failed-attempt limit as the checks see it: `FailureLimiter` holds it in this process and
 * answers synchronously; a shared one (RedisAttemptLimiter) keeps guesses spread over several nodes
 * within one limit and answers with promises. Both pass test/attempt-limiter-contract.ts. Settling an
 * attempt returns at once; a shared limiter applies a node's settlements before that node's next
 * answer, and another node's as soon as they arrive (until then they count as checks in flight).
 */
export interface AttemptLimiter {
  /** 0 if an attempt for `key` would be reserved now, else the ms to wait. Reserves nothing. */
  retryAfterMs(key: string, now?: number): number | Promise<number>;
  /** Reserves an attempt for `key` before its secret is checked, or refuses it with the ms to wait. */
  reserve(key: string, now?: number): Reservation | Promise<Reservation>;
}

/**
 * What makes one limit among several on a shared backend: the name keeps their keys apart (the login
 * limit per address and the factory limit may both count "10.0.0.1"), and every node uses the same.
 */
export interface NamedLimiterOptions extends FailureLimiterOptions {
  name: string;
}

/** The wait suggested while checks in flight fill the limit. */
const IN_FLIGHT_WAIT_MS = 1000;

export class FailureLimiter implements AttemptLimiter {
  readonly #windows: LRUCache<string, Window>;
  readonly #now: () => number;

  constructor(private readonly opts: FailureLimiterOptions) {
    // No LRU ttl: windows end on the limiter's own clock (below), and an entry with checks in flight
    // must not vanish under them.
    this.#windows = new LRUCache({ max: opts.maxKeys });
    this.#now = opts.now ?? Date.now;
  }

  /** The key's window as of `now`: an ended one starts again with no failures (checks in flight still count). */
  #current(key: string, now: number): Window | undefined {
    const w = this.#windows.get(key);
    if (w !== undefined && now >= w.startedAt + this.opts.windowMs) {
      w.failures = 0;
      w.startedAt = now;
      if (w.inFlight === 0) {
        this.#windows.delete(key);
        return undefined;
      }
    }
    return w;
  }

  /**
   * How long a refused attempt should wait: until the window ends when its failures alone reach the
   * limit; a second (Retry-After's unit) when checks in flight make up the rest, since they settle
   * within seconds and may succeed.
   */
  #wait(w: Window, now: number): number {
    const windowEnd = Math.max(1, w.startedAt + this.opts.windowMs - now);
    return w.failures >= this.opts.maxFailures ? windowEnd : Math.min(windowEnd, IN_FLIGHT_WAIT_MS);
  }

  /** 0 if an attempt for `key` would be reserved now, else the ms to wait (see #wait). Reserves nothing. */
  retryAfterMs(key: string, now = this.#now()): number {
    const w = this.#current(key, now);
    return w === undefined || w.failures + w.inFlight < this.opts.maxFailures ? 0 : this.#wait(w, now);
  }

  /**
   * Reserves an attempt for `key` before its secret is checked, or refuses it (failures and checks in
   * flight already reach the limit) with the ms to wait.
   */
  reserve(key: string, now = this.#now()): Reservation {
    let w = this.#current(key, now);
    if (w !== undefined && w.failures + w.inFlight >= this.opts.maxFailures) return { attempt: undefined, retryAfterMs: this.#wait(w, now) };
    if (w === undefined) {
      w = { failures: 0, inFlight: 0, startedAt: now };
      this.#windows.set(key, w);
    }
    w.inFlight++;
    return { attempt: this.#attempt(key, w), retryAfterMs: 0 };
  }

  #attempt(key: string, w: Window): Attempt {
    let open = true;
    const settle = (failure: boolean, clear: boolean) => {
      if (!open) return;
      open = false;
      w.inFlight--;
      if (failure) w.failures++;
      if (clear) w.failures = 0;
      // A window with nothing to count is dropped, so successful checks do not fill the LRU. The entry
      // may have been pushed out and replaced meanwhile: only this window is removed.
      if (w.failures === 0 && w.inFlight === 0 && this.#windows.peek(key) === w) this.#windows.delete(key);
    };
    return {
      failed: () => settle(true, false),
      succeeded: () => settle(false, true),
      release: () => settle(false, false),
    };
  }

  /** Keys tracked (for tests and metrics). */
  get size(): number {
    return this.#windows.size;
  }
}

/**
 * The key of a client address: an IPv4 address as is (also when IPv4-mapped), an IPv6 address by its
 * /64 prefix, since one host commonly holds a whole /64 (RFC 4291 §2.5.4 interface identifiers).
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.toLowerCase().split('%')[0]!.split('::') as [string, string?];
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  // An embedded IPv4 tail (::1.2.3.4) counts as two groups; it only matters past the /64 anyway.
  const groupsRight = right.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - groupsRight).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
