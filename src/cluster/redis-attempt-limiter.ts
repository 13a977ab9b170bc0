/**
 * A failed-attempt limit shared by every node (src/core/failure-limiter.ts has the rules): guesses
 * spread over several fronts count against one window, so they are not multiplied by the number of
 * nodes. Per limited key, a hash `limit:<name>:<key>` holds the window's failures and start, and a
 * sorted set beside it (`…:r`) the reservations not settled yet, each with a deadline: a node that
 * dies with checks in flight does not hold its reservations for ever (RESERVATION_TTL_MS).
 *
 * Each call is one Lua script, so concurrent reservations from any number of nodes are counted
 * exactly. Keys expire with their window. When Redis is unreachable a reservation fails with
 * CR_ERR_BACKEND_UNAVAILABLE: a check that cannot be counted is not made.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Attempt, AttemptLimiter, NamedLimiterOptions, Reservation } from '../core/failure-limiter.js';
import { redisCall } from './redis-connection.js';
import { RedisScript } from './redis-script.js';

/** Longer than any check runs (a password hash, a device's answer); an unsettled reservation ends then. */
const RESERVATION_TTL_MS = 120_000;
/** The wait suggested while checks in flight fill the limit (as FailureLimiter). */
const IN_FLIGHT_WAIT_MS = 1000;

/**
 * KEYS: state hash, reservations. ARGV: now, window ms, max, reservation id, reservation TTL, peek (1).
 * Returns 0 (reserved, or would be) or the ms to wait.
 */
const RESERVE = new RedisScript(`
local now, win, max, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local st = redis.call('HMGET', KEYS[1], 'f', 's')
local f, s = tonumber(st[1] or '0'), tonumber(st[2] or ARGV[1])
if now >= s + win then f, s = 0, now end
if f + redis.call('ZCARD', KEYS[2]) >= max then
  local wait = math.max(1, s + win - now)
  if f < max then wait = math.min(wait, ${IN_FLIGHT_WAIT_MS}) end
  return wait
end
if ARGV[6] == '1' then return 0 end
redis.call('HSET', KEYS[1], 'f', f, 's', s)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[4])
redis.call('PEXPIRE', KEYS[1], win + ttl)
redis.call('PEXPIRE', KEYS[2], win + ttl)
return 0`, 2);

/**
 * KEYS: state hash, reservations. ARGV: reservation id, outcome (failed|succeeded|release), the
 * reservation's time, window ms. Only a reservation still held is settled (once).
 */
const SETTLE = new RedisScript(`
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
local st = redis.call('HMGET', KEYS[1], 'f', 's')
local f, s = tonumber(st[1] or '0'), st[2] or ARGV[3]
if ARGV[2] == 'failed' then f = f + 1 elseif ARGV[2] == 'succeeded' then f = 0 end
if f == 0 and redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'f', f, 's', s)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + ${RESERVATION_TTL_MS})
return 1`, 2);

export interface RedisAttemptLimiterOptions extends NamedLimiterOptions {
  redis: Redis;
  keyPrefix: string;
  /** Told when a settlement could not be written (the reservation then ends at its deadline). */
  onError?: (err: unknown) => void;
}

export class RedisAttemptLimiter implements AttemptLimiter {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #onError: (err: unknown) => void;
  /** Reservation ids: unique per limiter instance, so nodes never settle each other's. */
  readonly #instance = randomBytes(6).toString('base64url');
  #reservations = 0;

  constructor(options: RedisAttemptLimiterOptions) {
    this.#redis = options.redis;
    this.#prefix = `${options.keyPrefix}limit:${options.name}:`;
    this.#maxFailures = options.maxFailures;
    this.#windowMs = options.windowMs;
    this.#now = options.now ?? Date.now;
    this.#onError = options.onError ?? (() => undefined);
  }

  async retryAfterMs(key: string, now = this.#now()): Promise<number> {
    return Number(await redisCall(RESERVE.run(this.#redis, this.#keys(key), [now, this.#windowMs, this.#maxFailures, '', RESERVATION_TTL_MS, 1])));
  }

  async reserve(key: string, now = this.#now()): Promise<Reservation> {
    const id = `${this.#instance}.${++this.#reservations}`;
    const keys = this.#keys(key);
    const wait = Number(await redisCall(RESERVE.run(this.#redis, keys, [now, this.#windowMs, this.#maxFailures, id, RESERVATION_TTL_MS, 0])));
    if (wait > 0) return { attempt: undefined, retryAfterMs: wait };
    return { attempt: this.#attempt(keys, id, now), retryAfterMs: 0 };
  }

  #attempt(keys: string[], id: string, reservedAt: number): Attempt {
    let open = true;
    // Sent at once on the one connection, so what this node asks next already sees it.
    const settle = (outcome: 'failed' | 'succeeded' | 'release') => {
      if (!open) return;
      open = false;
      SETTLE.run(this.#redis, keys, [id, outcome, reservedAt, this.#windowMs]).catch(this.#onError);
    };
    return {
      failed: () => settle('failed'),
      succeeded: () => settle('succeeded'),
      release: () => settle('release'),
    };
  }

  #keys(key: string): string[] {
    const state = this.#prefix + key;
    return [state, `${state}:r`];
  }
}
