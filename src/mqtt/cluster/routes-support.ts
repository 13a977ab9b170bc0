/** Small parts of ClusterRoutes (routes-redis.ts) kept apart: its rate-limited warnings and the cluster's client totals. */
import type { Redis } from 'ioredis';

/** Warnings about Redis are logged at most this often. */
const WARN_INTERVAL_MS = 10_000;

/** Logs at most one warning per interval (a Redis outage or a flood of failures must not flood the log), with the count since the last. */
export class RateLimitedWarnings {
  #warnedAt = -Infinity;
  #unwarned = 0;

  constructor(
    private readonly nodeId: string,
    private readonly onWarning: (message: string, details: Record<string, unknown>) => void,
  ) {}

  warn(message: string, details: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.#warnedAt < WARN_INTERVAL_MS) {
      this.#unwarned++;
      return;
    }
    this.onWarning(message, { ...details, node: this.nodeId, since_last: this.#unwarned });
    this.#warnedAt = now;
    this.#unwarned = 0;
  }
}

/** Writes this node's connected clients in the hash of per-node counters; returns the live nodes' summed (dead nodes' entries deleted). */
export async function countClients(redis: Redis, key: string, nodeId: string, connections: number, live: Set<string>): Promise<{ nodes: number; connected: number }> {
  const [, [, counts]] = (await redis.multi().hset(key, nodeId, String(connections)).hgetall(key).exec()) as [unknown, [unknown, Record<string, string>]];
  let connected = 0;
  const dead: string[] = [];
  for (const [id, n] of Object.entries(counts)) {
    if (live.has(id) || id === nodeId) connected += Number(n) || 0;
    else dead.push(id);
  }
  if (dead.length > 0) await redis.hdel(key, ...dead);
  return { nodes: Math.max(1, live.size), connected };
}
