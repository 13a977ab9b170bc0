/**
 * The Redis implementations of the seams as test/contracts.test.ts makes them: each instance on its
 * own key prefix under this run's prefix of the shared test Redis (test/support/services.ts), with
 * its own connection, so a case starts empty and closing it leaves nothing open. `cleanup` deletes
 * the run's keys.
 */
import type { Redis } from 'ioredis';
import { openRedis } from '../../src/cluster/redis-connection.js';
import { testRedis, type TestRedis } from './services.js';

export interface RedisSeams {
  /** A new connection and a key prefix no other instance uses. */
  connect(): Promise<{ redis: Redis; keyPrefix: string }>;
  /** Closes the connections handed out and deletes every key of the run. */
  cleanup(): Promise<void>;
}

export function redisSeams(): RedisSeams {
  let server: Promise<TestRedis> | undefined;
  const open: Redis[] = [];
  let n = 0;
  return {
    async connect() {
      const { url, keyPrefix } = await (server ??= testRedis());
      const redis = await openRedis(url, 'cloudrest-test');
      open.push(redis);
      return { redis, keyPrefix: `${keyPrefix}${++n}:` };
    },
    async cleanup() {
      for (const r of open.splice(0)) r.disconnect();
      if (server) await (await server).drop();
    },
  };
}
