import type { ServerResponse } from 'node:http';
import { hitHeaders, notModifiedHeaders, revalidationHeaders, X_CACHE, type CachedResponse, type CacheRead, type ResponseCache } from './cache.js';
import { createEntry, freshen, invalidatingMethod, isCacheableResponse, isNotModified, lookup, type CacheDecision } from './cache-policy.js';
import type { HeaderList, ResponseHead } from './protocol/heads.js';
import { LRUCache } from 'lru-cache';

/** Most targets remembered as not storable (each a short string and a number). */
const PASS_TARGETS = 10_000;

const passKey = (deviceId: string, target: string): string => `${deviceId}\n${target}`;

/** What the cache decided for one relayed request, carried from before forwarding to the response. */
export interface CachePlan {
  /** 'pass': the target answered with something not storable a moment ago, so the cache was not asked. */
  decision: CacheDecision | 'write' | 'none' | 'pass';
  entry: CachedResponse | undefined;
  fillToken: number;
  /** Headers as the client sent them (after hop-by-hop removal): the client's conditions live here. */
  clientHeaders: HeaderList;
  /** Headers to send to the device (with the entry's validators when revalidating). */
  forwardHeaders: HeaderList;
  requestTime: number;
}

/** Receives the body of a response that may be stored; stops copying past the entry limit. */
export interface CacheSink {
  chunk(b: Buffer): void;
  end(): void;
}

/** Runs a cache write whose result the response does not wait for. */
function settle(r: unknown): void {
  if (r instanceof Promise) r.catch(() => undefined);
}

function flatten(headers: HeaderList): string[] {
  const flat: string[] = [];
  for (const [k, v] of headers) flat.push(k, v);
  return flat;
}

function makePlan(decision: CachePlan['decision'], entry: CachedResponse | undefined, fillToken: number, clientHeaders: HeaderList, forwardHeaders: HeaderList, requestTime: number): CachePlan {
  return { decision, entry, fillToken, clientHeaders, forwardHeaders, requestTime };
}

function decide({ entry, fillToken }: CacheRead, headers: HeaderList, requestTime: number): CachePlan {
  const decision = lookup(entry, headers, requestTime);
  const forwardHeaders = decision === 'revalidate' && entry ? revalidationHeaders(entry, headers) : headers;
  return makePlan(decision, entry, fillToken, headers, forwardHeaders, requestTime);
}

/**
 * The relay's use of a ResponseCache (seed "Caching"): GET answers cached per device + URI, served
 * fresh with X-Cache: HIT, revalidated with the device when stale, dropped by writes to the URI and by
 * the device reconnecting. The policy itself is in cache-policy.ts.
 */
export class RelayCache {
  readonly #cache: ResponseCache;
  readonly #maxEntryBytes: number;
  /**
   * Targets whose last GET answer was not storable, until when (Varnish's "hit-for-miss"): their next
   * GETs go to the device without asking the cache. Only for a cache in another process (Redis), where
   * the lookup is a round trip: it was most of a front's CPU per uncacheable request (bench/cluster).
   * Skipping the lookup only ever sends a request to the device, which is always a correct answer.
   */
  readonly #passes: LRUCache<string, number> | undefined;
  readonly #passMs: number;

  /**
   * `cache` holds the entries (src/backends.ts picks it); `maxEntryBytes` bounds what is buffered to
   * store one; `passMs` > 0 remembers non-storable targets that long (for a shared cache).
   */
  constructor(cache: ResponseCache, opts: { maxEntryBytes: number; passMs?: number }) {
    this.#cache = cache;
    this.#maxEntryBytes = opts.maxEntryBytes;
    this.#passMs = opts.passMs ?? 0;
    this.#passes = this.#passMs > 0 ? new LRUCache({ max: PASS_TARGETS }) : undefined;
  }

  invalidateDevice(deviceId: string): void {
    settle(this.#cache.invalidateDevice(deviceId));
  }

  /** Drops the answers for a target's path (any query): a write elsewhere (the LAN) changed it. */
  invalidateUri(deviceId: string, target: string): void {
    settle(this.#cache.invalidateUri(deviceId, target));
  }

  /** The cache's decision for a request: synchronous when the cache answers synchronously (memory). */
  plan(deviceId: string, method: string, target: string, headers: HeaderList): CachePlan | Promise<CachePlan> {
    const requestTime = Date.now();
    // Plans are built as one literal of one shape: an object spread here cost 3 µs per relayed request.
    if (invalidatingMethod(method)) return makePlan('write', undefined, 0, headers, headers, requestTime);
    if (method !== 'GET' && method !== 'HEAD') return makePlan('none', undefined, 0, headers, headers, requestTime);
    const passes = this.#passes;
    if (passes !== undefined && passes.size > 0 && (passes.get(passKey(deviceId, target)) ?? 0) > requestTime) {
      return makePlan('pass', undefined, 0, headers, headers, requestTime);
    }
    const read = this.#cache.get(deviceId, target);
    return read instanceof Promise ? read.then((r) => decide(r, headers, requestTime)) : decide(read, headers, requestTime);
  }

  /** Answers from the cache when the plan allows; true if it did. */
  tryServe(plan: CachePlan, method: string, res: ServerResponse): boolean {
    const e = plan.entry;
    if (!e) return false;
    if (plan.decision === 'fresh') {
      res.writeHead(e.status, flatten(hitHeaders(e, Date.now())));
      res.end(method === 'HEAD' ? undefined : e.body);
      return true;
    }
    if (plan.decision === 'not-modified') {
      res.writeHead(304, flatten(notModifiedHeaders(e, Date.now())));
      res.end();
      return true;
    }
    return false;
  }

  /**
   * Called with the device's response head. Returns 'served' when the cache answered (the device
   * confirmed our copy with 304), else a sink for the body (or undefined), and adds X-Cache to `flat`.
   */
  onResponse(plan: CachePlan, deviceId: string, method: string, target: string, head: ResponseHead, res: ServerResponse, flat: string[]): CacheSink | 'served' | undefined | Promise<CacheSink | 'served' | undefined> {
    const cache = this.#cache;
    if (plan.decision === 'write') {
      settle(cache.invalidateUri(deviceId, target)); // RFC 9111 §4.4
      return undefined;
    }
    if (plan.decision === 'none') return undefined;
    if (plan.decision === 'pass') {
      flat.push(X_CACHE, 'MISS');
      // Storable again: the next GET asks the cache (and may fill it); this one had no fill token.
      if (isCacheableResponse(method, head.status, head.headers, plan.clientHeaders, Date.now())) this.#passes?.delete(passKey(deviceId, target));
      return undefined;
    }
    if (plan.decision === 'revalidate' && plan.entry && head.status === 304) return this.#revalidated(plan, deviceId, method, target, head, res, flat);
    return this.#miss(plan, deviceId, method, target, head, flat);
  }

  async #revalidated(plan: CachePlan, deviceId: string, method: string, target: string, head: ResponseHead, res: ServerResponse, flat: string[]): Promise<CacheSink | 'served' | undefined> {
    const cache = this.#cache;
    const responseTime = Date.now();
    const u = freshen(plan.entry!, head.headers, plan.requestTime, responseTime);
    if (u) {
      if (isCacheableResponse('GET', 200, u.headers, plan.clientHeaders, responseTime)) await cache.set(deviceId, target, u, plan.fillToken);
      else await cache.delete(deviceId, target);
      if (isNotModified(u, plan.clientHeaders)) {
        res.writeHead(304, flatten(notModifiedHeaders(u, responseTime)));
        res.end();
      } else {
        res.writeHead(u.status, flatten(hitHeaders(u, responseTime)));
        res.end(method === 'HEAD' ? undefined : u.body);
      }
      return 'served';
    }
    await cache.delete(deviceId, target);
    return this.#miss(makePlan(plan.decision, undefined, plan.fillToken, plan.clientHeaders, plan.forwardHeaders, plan.requestTime), deviceId, method, target, head, flat);
  }

  #miss(plan: CachePlan, deviceId: string, method: string, target: string, head: ResponseHead, flat: string[]): CacheSink | undefined {
    const cache = this.#cache;
    const responseTime = Date.now();
    flat.push(X_CACHE, 'MISS');
    if (method !== 'GET' || plan.decision === 'bypass' || !isCacheableResponse(method, head.status, head.headers, plan.clientHeaders, responseTime)) {
      if (plan.entry) settle(cache.delete(deviceId, target));
      // The device's answer (not the client's request) made it unstorable: skip the lookup for a while.
      if (this.#passes !== undefined && method === 'GET' && plan.decision !== 'bypass') this.#passes.set(passKey(deviceId, target), responseTime + this.#passMs);
      return undefined;
    }
    const parts: Buffer[] = [];
    let size = 0;
    const limit = this.#maxEntryBytes;
    return {
      chunk(b) {
        if (size > limit) return;
        size += b.length;
        if (size <= limit) parts.push(b);
        else parts.length = 0;
      },
      end() {
        if (size > limit) return;
        const e = createEntry({ requestHeaders: plan.clientHeaders, status: head.status, headers: head.headers, body: Buffer.concat(parts, size), requestTime: plan.requestTime, responseTime });
        if (e) void cache.set(deviceId, target, e, plan.fillToken);
      },
    };
  }
}
