/**
 * Failed-attempt limits, one mechanism for every check a stranger can repeat (passwords, device
 * secrets, factory keys): at most `maxFailures` failures per key in a window of `windowMs` from the
 * first failure; past that, every attempt is refused until the window ends, before any secret is
 * hashed or looked up. Keys live in an LRU of `maxKeys` entries, so an attacker cycling through keys
 * costs a bounded amount of memory (and can at worst push older keys out, which lifts their limit
 * early; it never blocks anyone extra).
 */
import { isIPv6 } from 'node:net';
import { LRUCache } from 'lru-cache';

export interface FailureLimiterOptions {
  /** Failures allowed per key per window; the next attempt waits for the window to end. */
  maxFailures: number;
  windowMs: number;
  /** Keys tracked at most (least recently used dropped first). */
  maxKeys: number;
  /** The clock (tests); Date.now by default. A call may also pass its own `now`. */
  now?: () => number;
}

interface Window {
  failures: number;
  startedAt: number;
}

export class FailureLimiter {
  readonly #windows: LRUCache<string, Window>;
  readonly #now: () => number;

  constructor(private readonly opts: FailureLimiterOptions) {
    this.#windows = new LRUCache({ max: opts.maxKeys, ttl: opts.windowMs, ttlAutopurge: false });
    this.#now = opts.now ?? Date.now;
  }

  /** 0 if an attempt for `key` may proceed, else the ms until it may. */
  retryAfterMs(key: string, now = this.#now()): number {
    const w = this.#windows.get(key);
    if (w === undefined || w.failures < this.opts.maxFailures) return 0;
    return Math.max(0, w.startedAt + this.opts.windowMs - now);
  }

  failed(key: string, now = this.#now()): void {
    const w = this.#windows.get(key);
    if (w === undefined || now >= w.startedAt + this.opts.windowMs) {
      this.#windows.set(key, { failures: 1, startedAt: now });
    } else {
      w.failures++;
    }
  }

  succeeded(key: string): void {
    this.#windows.delete(key);
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
