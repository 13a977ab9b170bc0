/**
 * How the hub talks to Redis: connections that fail fast instead of queueing while Redis is away
 * (a request that needs Redis gets 503 CR_ERR_BACKEND_UNAVAILABLE within `commandTimeoutMs`, never
 * hangs), and reconnect by themselves with a capped, jittered back-off.
 */
import { Redis } from 'ioredis';
import { HubError } from '../errors.js';

/** How long one command may take before it fails as "Redis unavailable". */
export const REDIS_COMMAND_TIMEOUT_MS = 2000;
const RECONNECT_MAX_MS = 2000;

/** A command connection to `url`, connected (rejects when Redis cannot be reached at start-up). */
export async function openRedis(url: string, name = 'cloudrest', timeoutMs = REDIS_COMMAND_TIMEOUT_MS): Promise<Redis> {
  const redis = new Redis(url, redisOptions(name, timeoutMs));
  // Without a listener, ioredis reports every failed reconnect as an unhandled 'error' event.
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot connect to Redis at ${redactUrl(url)}: ${(err as Error).message}`, { cause: err });
  }
  return redis;
}

/** A second connection like `redis` (same server and options), e.g. for subscriptions; not yet connected. */
export function duplicateRedis(redis: Redis, name: string): Redis {
  const copy = redis.duplicate({ ...redisOptions(name, redis.options.commandTimeout ?? REDIS_COMMAND_TIMEOUT_MS), lazyConnect: true });
  copy.on('error', () => undefined);
  return copy;
}

function redisOptions(name: string, timeoutMs: number) {
  return {
    connectionName: name,
    lazyConnect: true,
    // Fail at once while disconnected: a queued command would hold its HTTP request until Redis is back.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: timeoutMs,
    connectTimeout: timeoutMs,
    // Every reconnect backs off with jitter (ARCHITECTURE.md), capped so recovery is quick.
    retryStrategy: (times: number) => Math.min(RECONNECT_MAX_MS, 50 * 2 ** Math.min(times, 6)) * (0.5 + Math.random() / 2),
  } as const;
}

/** The rejection of a Redis command, as the error a client sees: 503 CR_ERR_BACKEND_UNAVAILABLE. */
export function redisUnavailable(err: unknown): HubError {
  if (err instanceof HubError) return err;
  return new HubError('CR_ERR_BACKEND_UNAVAILABLE', `Redis is unavailable: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/** Runs a Redis command, turning its failure into CR_ERR_BACKEND_UNAVAILABLE. */
export async function redisCall<T>(command: Promise<T>): Promise<T> {
  try {
    return await command;
  } catch (err) {
    throw redisUnavailable(err);
  }
}

/** `url` without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis://(unparsable url)';
  }
}
