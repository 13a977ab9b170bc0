/**
 * The relay's response cache in Redis, shared by every node: a write through any front invalidates
 * the entry for all of them, because there is only the one copy.
 *
 * Invalidation costs O(1), whatever the device has cached: each device has a small state hash
 * (`cache:v:<device>`) holding a sequence number, the sequence of its last reconnect (`d`) and of the
 * last write to each path (`p:<path>`). An entry (`cache:e:<key>`) carries the sequence it was filled
 * under and counts only while that is no older than the device's and its path's last invalidation, and
 * no older than the hash itself (`base`: a hash evicted or expired takes its entries' validity with
 * it). Sequences come from the Redis clock, so a recreated hash starts above every earlier one.
 *
 * Bounded: every entry has a TTL (its remaining freshness, plus a while to revalidate it when it has a
 * validator); a state hash lives as long as its longest entry and is reset past MAX_STATE_FIELDS paths.
 * Total memory is Redis's to bound: run it with `maxmemory` and `maxmemory-policy allkeys-lru`.
 *
 * While Redis is unreachable the cache answers "miss" and stores nothing: requests go to the device.
 */
import type { Redis } from 'ioredis';
import { cacheKey, entrySize, targetPath, type CachedResponse, type CacheRead, type ResponseCache } from '../relay/cache.js';
import { currentAge } from '../relay/cache-policy.js';
import { RedisScript } from './redis-script.js';
import { decodeCachedResponse, encodeCachedResponse } from './cached-response-codec.js';

/** How long a stale entry with a validator is kept for revalidation (a 304 from the device makes it fresh again). */
const REVALIDATE_KEEP_MS = 10 * 60_000;
/** A device's state hash outlives every fill in flight by this much (the memory cache's fill window). */
const FILL_WINDOW_MS = 5 * 60_000;
/** Paths remembered per device before its state starts over (all its entries void). */
const MAX_STATE_FIELDS = 1000;
/** The fill sequence at the head of each entry: 16 decimal digits (microseconds since the epoch). */
const SEQ_DIGITS = 16;
/** A fill token that no `set` accepts: what a read gets while Redis is unreachable. */
const NO_FILL = -1;

const NOW_SEQ = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])`;

/** KEYS: state, entry. ARGV: path field. Returns {token} or {token, entry}. */
const GET = new RedisScript(`
local s = redis.call('HMGET', KEYS[1], 'base', 'seq', 'd', ARGV[1])
local token = s[2] or '0'
if not s[1] then return {token} end
local e = redis.call('GET', KEYS[2])
if not e then return {token} end
local t = tonumber(string.sub(e, 1, ${SEQ_DIGITS}))
if t < tonumber(s[1]) or t < tonumber(s[3] or '0') or t < tonumber(s[4] or '0') then return {token} end
return {token, e}`, 2);

/** KEYS: state, entry. ARGV: token, entry bytes, entry TTL ms. Returns 1 when stored. */
const SET = new RedisScript(`
local seq = redis.call('HGET', KEYS[1], 'seq')
if not seq then
  if ARGV[1] ~= '0' then return 0 end
  ${NOW_SEQ}
  seq = string.format('%0${SEQ_DIGITS}.0f', now)
  redis.call('HSET', KEYS[1], 'base', seq, 'seq', seq)
elseif seq ~= ARGV[1] then
  return 0
end
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[2], seq .. ARGV[2], 'PX', ttl)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1`, 2);

/** KEYS: state. ARGV: field ('d' or 'p:<path>'), fill window ms, max fields. */
const INVALIDATE = new RedisScript(`
${NOW_SEQ}
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local s = string.format('%0${SEQ_DIGITS}.0f', math.max(seq + 1, now))
if seq == 0 or redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'base', s)
end
redis.call('HSET', KEYS[1], 'seq', s, ARGV[1], s)
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`, 1);

export interface RedisResponseCacheOptions {
  redis: Redis;
  keyPrefix: string;
  /** Largest single entry (as MemoryResponseCache counts it); a larger one is not stored. */
  maxEntryBytes: number;
}

export class RedisResponseCache implements ResponseCache {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #maxEntryBytes: number;

  constructor(options: RedisResponseCacheOptions) {
    this.#redis = options.redis;
    this.#prefix = options.keyPrefix;
    this.#maxEntryBytes = options.maxEntryBytes;
  }

  async get(deviceId: string, target: string): Promise<CacheRead> {
    let reply: [Buffer, Buffer?];
    try {
      reply = (await GET.runBuffer(this.#redis, [this.#stateKey(deviceId), this.#entryKey(deviceId, target)], [pathField(target)])) as [Buffer, Buffer?];
    } catch {
      return { entry: undefined, fillToken: NO_FILL };
    }
    const token = Number(reply[0].toString('latin1'));
    const bytes = reply[1];
    if (bytes === undefined) return { entry: undefined, fillToken: token };
    try {
      return { entry: decodeCachedResponse(bytes, SEQ_DIGITS), fillToken: token };
    } catch {
      return { entry: undefined, fillToken: token };
    }
  }

  async set(deviceId: string, target: string, entry: CachedResponse, fillToken: number): Promise<boolean> {
    if (fillToken === NO_FILL) return false;
    const key = cacheKey(deviceId, target);
    try {
      if (entrySize(key, entry) > this.#maxEntryBytes) {
        // The stored response is older than this one, so it must not outlive it.
        await this.#redis.del(this.#prefix + 'cache:e:' + key);
        return false;
      }
      const stored = await SET.run(this.#redis, [this.#stateKey(deviceId), this.#prefix + 'cache:e:' + key], [tokenString(fillToken), encodeCachedResponse(entry), entryTtlMs(entry)]);
      return stored === 1;
    } catch {
      return false;
    }
  }

  async delete(deviceId: string, target: string): Promise<void> {
    // Only ever after a revalidation: failing it must not fail the response it was part of.
    await this.#redis.del(this.#entryKey(deviceId, target)).catch(() => undefined);
  }

  async invalidateUri(deviceId: string, target: string): Promise<void> {
    await INVALIDATE.run(this.#redis, [this.#stateKey(deviceId)], [pathField(target), FILL_WINDOW_MS, MAX_STATE_FIELDS]);
  }

  async invalidateDevice(deviceId: string): Promise<void> {
    await INVALIDATE.run(this.#redis, [this.#stateKey(deviceId)], ['d', FILL_WINDOW_MS, MAX_STATE_FIELDS]);
  }

  #stateKey(deviceId: string): string {
    return `${this.#prefix}cache:v:${deviceId}`;
  }

  #entryKey(deviceId: string, target: string): string {
    return `${this.#prefix}cache:e:${cacheKey(deviceId, target)}`;
  }
}

function pathField(target: string): string {
  return `p:${targetPath(target)}`;
}

/** Tokens are Redis's 16-digit sequence strings, as numbers (exact: below 2^53). */
function tokenString(token: number): string {
  return token === 0 ? '0' : String(token).padStart(SEQ_DIGITS, '0');
}

/** How long an entry is worth keeping: until it goes stale, and longer if it can be revalidated. */
function entryTtlMs(entry: CachedResponse): number {
  const fresh = Math.max(0, entry.freshnessMs - currentAge(entry, Date.now()));
  const keep = entry.etag !== null || entry.lastModified !== null ? REVALIDATE_KEEP_MS : 0;
  return Math.max(1000, Math.ceil(fresh + keep));
}
