import { LRUCache } from 'lru-cache';
import { currentAge, headerValue, MAX_DELTA_SECONDS } from './cache-policy.js';
import type { CachedResponse } from './cached-response.js';
import type { HeaderList } from './protocol/heads.js';

/**
 * The relay's response cache: the stored entry, the headers answered from it, and `ResponseCache`,
 * the store of entries per device + request target. The rules of what is stored and when it may be
 * reused (RFC 9111) live in cache-policy.ts. `MemoryResponseCache` serves one hub; a Redis
 * implementation of the same interface comes with the scale-out, and both must pass the
 * `ResponseCache` suite in cache.test.ts.
 */

export type { CachedResponse } from './cached-response.js';

/** The response header that tells clients whether the cache answered: `HIT` or `MISS`. */
export const X_CACHE = 'x-cache';
/** RFC 9110 §15.4.5: the fields a 304 carries (last-modified only when there is no etag). */
const NOT_MODIFIED_FIELDS = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary']);

/**
 * A value or a promise of it. The memory cache answers synchronously, so a hit costs no promise and
 * no I/O, and a handler that wants the fast path can test `instanceof Promise`; a Redis cache returns
 * promises. Callers that simply `await` every result work with both.
 */
export type Awaitable<T> = T | Promise<T>;

export interface CacheRead {
  entry: CachedResponse | undefined;
  /**
   * Opaque: pass it to `set` when storing the answer to the request this read was for.
   * A fill is refused if the device's entries were invalidated after the read, so a GET that was in
   * flight while a PUT changed the device cannot put the old state back into the cache.
   */
  fillToken: number;
}

export interface ResponseCache {
  /** The entry for this device and target (path + query), and a fill token. */
  get(deviceId: string, target: string): Awaitable<CacheRead>;
  /**
   * Stores an entry, replacing any for the same key. Returns false when it was not stored: too big,
   * the cache disabled, or an invalidation of the device since the `get` that gave `fillToken`.
   */
  set(deviceId: string, target: string, entry: CachedResponse, fillToken: number): Awaitable<boolean>;
  /** Drops the entry for exactly this target (a revalidation found the stored response unusable). */
  delete(deviceId: string, target: string): Awaitable<void>;
  /** Drops the entries for the target's path, whatever their query (RFC 9111 §4.4: after a write). */
  invalidateUri(deviceId: string, target: string): Awaitable<void>;
  /** Drops all the device's entries (it reconnected: its state may have changed meanwhile). */
  invalidateDevice(deviceId: string): Awaitable<void>;
}

/**
 * Headers to forward when revalidating (RFC 9111 §4.3.1): the client's own validators are replaced by
 * the entry's, so a 304 from the device speaks about the stored response; the client's conditions are
 * then evaluated against the freshened entry with `isNotModified`.
 */
export function revalidationHeaders(entry: CachedResponse, requestHeaders: HeaderList): HeaderList {
  const out = requestHeaders.filter(([k]) => k !== 'if-none-match' && k !== 'if-modified-since');
  if (entry.etag !== null) out.push(['if-none-match', entry.etag]);
  const lm = headerValue(entry.headers, 'last-modified');
  if (lm !== undefined) out.push(['if-modified-since', lm]);
  return out;
}

/** Headers of a 200 served from the entry: the stored ones, Age (RFC 9111 §5.1) and X-Cache: HIT. */
export function hitHeaders(entry: CachedResponse, now: number): HeaderList {
  return [...entry.headers, ['age', ageSeconds(entry, now)], [X_CACHE, 'HIT']];
}

/** Headers of a 304 answered from the entry (RFC 9110 §15.4.5), with Age and X-Cache: HIT. */
export function notModifiedHeaders(entry: CachedResponse, now: number): HeaderList {
  const out = entry.headers.filter(([k]) => NOT_MODIFIED_FIELDS.has(k) || (k === 'last-modified' && entry.etag === null));
  out.push(['age', ageSeconds(entry, now)], [X_CACHE, 'HIT']);
  return out;
}

function ageSeconds(entry: CachedResponse, now: number): string {
  return String(Math.min(Math.floor(currentAge(entry, now) / 1000), MAX_DELTA_SECONDS));
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * RFC 3986 §6.2.2 normalisation of a request target: percent-encoded unreserved characters are
 * decoded and other escapes upper-cased, so `/a%2dz`, `/a%2Dz` and `/a-z` share one entry and a write
 * to any of them invalidates it. Nothing else is rewritten: the device decides what paths mean.
 */
export function normalizeTarget(target: string): string {
  if (!target.includes('%')) return target;
  return target.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(c) ? c : escape.toUpperCase();
  });
}

/** The path of a request target: what a write invalidates (RFC 9111 §4.4), whatever the query. */
export function targetPath(target: string): string {
  const q = target.indexOf('?');
  return normalizeTarget(q < 0 ? target : target.slice(0, q));
}

/** The cache key of a device's request target. The length prefix keeps any device id unambiguous. */
export function cacheKey(deviceId: string, target: string): string {
  return `${deviceId.length}:${deviceId}${normalizeTarget(target)}`;
}

/** Fixed cost per entry (objects, index, LRU slots), so that a budget also bounds tiny entries. */
const ENTRY_OVERHEAD_BYTES = 256;

/** The bytes an entry is charged against the budget: body, headers, key and bookkeeping. */
export function entrySize(key: string, entry: CachedResponse): number {
  let n = ENTRY_OVERHEAD_BYTES + key.length * 2 + entry.body.length;
  for (const [k, v] of entry.headers) n += k.length + v.length + 32;
  for (const [k, v] of entry.vary) n += k.length + (v?.length ?? 0) + 32;
  return n;
}

export interface MemoryResponseCacheOptions {
  /** Memory for all entries, bookkeeping included; least recently used entries go first. 0 disables the cache. */
  maxBytes: number;
  /** Largest single entry (body, headers and bookkeeping); a larger one is not stored. */
  maxEntryBytes: number;
  /**
   * How long invalidations are remembered for refusing fills (default 300 000). A fill whose `get`
   * is older than this may be refused; it bounds the memory the invalidation marks take.
   */
  fillWindowMs?: number;
  /** Clock (default `Date.now`); tests pass their own. */
  now?: () => number;
}

interface Slot {
  deviceId: string;
  path: string;
  entry: CachedResponse;
}

/**
 * In-process cache with a byte budget (lru-cache). A per-device index, path -> keys, makes
 * invalidating a path with all its query strings, or a whole device, cost only its own entries.
 */
export class MemoryResponseCache implements ResponseCache {
  readonly #lru: LRUCache<string, Slot> | undefined;
  readonly #maxEntryBytes: number;
  readonly #index = new Map<string, Map<string, Set<string>>>();
  /**
   * Fill tokens are values of a counter that every invalidation advances. `#marks` remembers each
   * device's last invalidation, in time order (a device's mark moves to the end when renewed), for
   * `fillWindowMs`; `#forgotten` is the newest mark dropped, and tokens older than it are refused.
   */
  #seq = 0;
  #forgotten = 0;
  readonly #marks = new Map<string, { seq: number; at: number }>();
  readonly #fillWindowMs: number;
  readonly #now: () => number;

  constructor(opts: MemoryResponseCacheOptions) {
    this.#maxEntryBytes = Math.min(opts.maxEntryBytes, opts.maxBytes);
    this.#fillWindowMs = opts.fillWindowMs ?? 300_000;
    this.#now = opts.now ?? Date.now;
    if (opts.maxBytes <= 0 || this.#maxEntryBytes <= 0) return;
    this.#lru = new LRUCache<string, Slot>({
      maxSize: opts.maxBytes,
      maxEntrySize: this.#maxEntryBytes,
      sizeCalculation: (slot, key) => entrySize(key, slot.entry),
      dispose: (slot, key, reason) => {
        if (reason !== 'set') this.#unindex(key, slot);
      },
    });
  }

  /** Entries held. */
  get entries(): number {
    return this.#lru?.size ?? 0;
  }

  /** Devices with at least one entry. */
  get devices(): number {
    return this.#index.size;
  }

  /** Bytes charged against `maxBytes`. */
  get bytes(): number {
    return this.#lru?.calculatedSize ?? 0;
  }

  get(deviceId: string, target: string): CacheRead {
    return { entry: this.#lru?.get(cacheKey(deviceId, target))?.entry, fillToken: this.#seq };
  }

  set(deviceId: string, target: string, entry: CachedResponse, fillToken: number): boolean {
    if (this.#lru === undefined) return false;
    this.#forget();
    const mark = this.#marks.get(deviceId);
    if (fillToken < this.#forgotten || (mark !== undefined && mark.seq > fillToken)) return false;
    const key = cacheKey(deviceId, target);
    if (entrySize(key, entry) > this.#maxEntryBytes) {
      // The stored response is older than this one, so it must not outlive it.
      this.#lru.delete(key);
      return false;
    }
    const path = targetPath(target);
    this.#lru.set(key, { deviceId, path, entry });
    let paths = this.#index.get(deviceId);
    if (paths === undefined) this.#index.set(deviceId, (paths = new Map()));
    let keys = paths.get(path);
    if (keys === undefined) paths.set(path, (keys = new Set()));
    keys.add(key);
    return true;
  }

  delete(deviceId: string, target: string): void {
    this.#lru?.delete(cacheKey(deviceId, target));
  }

  invalidateUri(deviceId: string, target: string): void {
    this.#mark(deviceId);
    const keys = this.#index.get(deviceId)?.get(targetPath(target));
    if (keys !== undefined) for (const key of [...keys]) this.#lru?.delete(key);
  }

  invalidateDevice(deviceId: string): void {
    this.#mark(deviceId);
    const paths = this.#index.get(deviceId);
    if (paths === undefined) return;
    this.#index.delete(deviceId);
    for (const keys of paths.values()) for (const key of keys) this.#lru?.delete(key);
  }

  /** Called by lru-cache whenever an entry leaves (evicted, deleted, invalidated). */
  #unindex(key: string, slot: Slot): void {
    const paths = this.#index.get(slot.deviceId);
    const keys = paths?.get(slot.path);
    if (keys === undefined || !keys.delete(key) || keys.size > 0) return;
    paths!.delete(slot.path);
    if (paths!.size === 0) this.#index.delete(slot.deviceId);
  }

  #mark(deviceId: string): void {
    this.#marks.delete(deviceId);
    this.#marks.set(deviceId, { seq: ++this.#seq, at: this.#now() });
    this.#forget();
  }

  #forget(): void {
    const horizon = this.#now() - this.#fillWindowMs;
    for (const [deviceId, mark] of this.#marks) {
      if (mark.at >= horizon) break;
      this.#marks.delete(deviceId);
      this.#forgotten = mark.seq;
    }
  }
}
