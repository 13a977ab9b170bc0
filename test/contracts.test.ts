/**
 * Every seam's contract suite against every implementation of it (ARCHITECTURE.md "Seams"), through
 * the one runner in test/support/contracts.ts. A new backend (PostgreSQL Store, Redis Bus, Cache,
 * limits, history) is one more entry in its seam's list. What a single implementation promises beyond
 * its interface is tested next to it (src/core/local-bus.test.ts, src/store/sqlite/*.test.ts, ...).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { RedisAttemptLimiter } from '../src/cluster/redis-attempt-limiter.js';
import { RedisBus } from '../src/cluster/redis-bus.js';
import { RedisEventHistory } from '../src/cluster/redis-event-history.js';
import { RedisPresence } from '../src/cluster/redis-presence.js';
import { RedisResponseCache } from '../src/cluster/redis-response-cache.js';
import { FailureLimiter } from '../src/core/failure-limiter.js';
import { LocalBus } from '../src/core/local-bus.js';
import { MemoryEventHistory } from '../src/http/event-history.js';
import { MemoryMqttPersistence } from '../src/mqtt/memory-persistence.js';
import { MemoryResponseCache } from '../src/relay/cache.js';
import { SqliteMqttPersistence } from '../src/store/sqlite/mqtt-persistence.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { PostgresStore } from '../src/store/postgres/postgres-store.js';
import { PostgresMqttPersistence } from '../src/store/postgres/mqtt-persistence.js';
import { postgresSchemas } from './support/postgres-schemas.js';
import { attemptLimiterContract } from './attempt-limiter-contract.js';
import { busContract } from './bus-contract.js';
import { responseCacheContract } from './cache-contract.js';
import { eventHistoryContract } from './event-history-contract.js';
import { mqttPersistenceContract } from './mqtt-persistence-contract.js';
import { retainedSourceContract } from './retained-source-contract.js';
import { MemoryRetained } from '../src/mqtt/retained-source.js';
import { RetainedStore } from '../src/mqtt/retained.js';
import { storeContract } from './store-contract.js';
import { presenceContract, type PresenceNodes } from './presence-contract.js';
import { runContract } from './support/contracts.js';
import { redisSeams } from './support/redis-seams.js';
import { localRouterWorld } from './support/local-router-world.js';
import { clusterRouterWorld } from './support/cluster-router-world.js';
import { tunnelRouterContract } from './tunnel-router-contract.js';
import { MapPresence, type PresenceEntry } from '../src/core/presence.js';

/** A temporary folder per implementation that keeps files; `file()` names a new database in it. */
function tempFiles(prefix: string, nested: string) {
  let root: string | undefined;
  let n = 0;
  return {
    /** A path in a folder that does not exist yet, so the backend must create it. */
    file: (): string => join((root ??= mkdtempSync(join(tmpdir(), prefix))), `case-${++n}`, nested, 'hub.db'),
    cleanup: (): void => {
      if (root !== undefined) rmSync(root, { recursive: true, force: true });
    },
  };
}

const storeFiles = tempFiles('cloudrest-store-', 'nested');
/** One test database for the suite, a fresh schema in it per case. */
const storeSchemas = postgresSchemas();
runContract('Store', storeContract, [
  { name: 'SqliteStore in memory', make: () => Promise.resolve(SqliteStore.open(':memory:')) },
  { name: 'SqliteStore on a file', make: () => Promise.resolve(SqliteStore.open(storeFiles.file())), cleanup: storeFiles.cleanup },
  { name: 'PostgresStore', make: async () => PostgresStore.open(await storeSchemas.url()), cleanup: () => storeSchemas.drop() },
]);

const redisBuses = redisSeams();
runContract('Bus', busContract, [
  { name: 'LocalBus', make: (hooks) => Promise.resolve(new LocalBus(hooks.onError)) },
  {
    name: 'RedisBus',
    make: async (hooks) => {
      const { redis, keyPrefix } = await redisBuses.connect();
      const bus = await RedisBus.open({ redis, keyPrefix, onError: hooks.onError });
      // The bus leaves its command connection to its owner (backends.ts); here the case owns both.
      return { publish: (t, p) => bus.publish(t, p), subscribe: (f, h) => bus.subscribe(f, h), close: () => bus.close().finally(() => redis.disconnect()) };
    },
    cleanup: () => redisBuses.cleanup(),
  },
]);

const mqttFiles = tempFiles('cloudrest-mqtt-', '.');
const mqttSchemas = postgresSchemas();
runContract('MqttPersistence', mqttPersistenceContract, [
  { name: 'MemoryMqttPersistence', make: () => Promise.resolve({ p: new MemoryMqttPersistence() }), properties: { durable: false } },
  {
    name: 'SqliteMqttPersistence on a file',
    make: async () => {
      const file = mqttFiles.file();
      return { p: await SqliteMqttPersistence.open(file), reopen: () => SqliteMqttPersistence.open(file) };
    },
    cleanup: mqttFiles.cleanup,
    properties: { durable: true },
  },
  {
    name: 'PostgresMqttPersistence',
    make: async () => {
      const url = await mqttSchemas.url();
      return { p: await PostgresMqttPersistence.open(url), reopen: () => PostgresMqttPersistence.open(url) };
    },
    cleanup: () => mqttSchemas.drop(),
    properties: { durable: true },
  },
]);

const retainedSchemas = postgresSchemas();
runContract('RetainedSource', retainedSourceContract, [
  { name: 'MemoryRetained', make: (quotas) => Promise.resolve({ source: new MemoryRetained(new RetainedStore(), quotas), close: () => Promise.resolve() }), properties: { shared: false } },
  {
    name: 'PostgresRetained',
    make: async (quotas) => {
      // Each instance on its own pool, as each node has.
      const url = await retainedSchemas.url();
      const opened = [await PostgresMqttPersistence.open(url)];
      return {
        source: opened[0]!.sharedRetained(quotas),
        other: async () => {
          const p = await PostgresMqttPersistence.open(url);
          opened.push(p);
          return p.sharedRetained(quotas);
        },
        close: async () => {
          await Promise.all(opened.map((p) => p.close()));
        },
      };
    },
    cleanup: () => retainedSchemas.drop(),
    properties: { shared: true },
  },
]);

const redisCaches = redisSeams();
runContract('ResponseCache', responseCacheContract, [
  { name: 'MemoryResponseCache', make: () => Promise.resolve(new MemoryResponseCache({ maxBytes: 1 << 20, maxEntryBytes: 1 << 16 })) },
  {
    name: 'RedisResponseCache',
    make: async () => new RedisResponseCache({ ...(await redisCaches.connect()), maxEntryBytes: 1 << 16 }),
    cleanup: () => redisCaches.cleanup(),
  },
]);

const redisLimiters = redisSeams();
runContract('AttemptLimiter', attemptLimiterContract, [
  { name: 'FailureLimiter', make: (options) => Promise.resolve(new FailureLimiter(options)) },
  {
    name: 'RedisAttemptLimiter',
    make: async (options) => new RedisAttemptLimiter({ ...options, name: 'contract', ...(await redisLimiters.connect()) }),
    cleanup: () => redisLimiters.cleanup(),
  },
]);

const redisHistories = redisSeams();
runContract('EventHistory', eventHistoryContract, [
  { name: 'MemoryEventHistory', make: (options) => Promise.resolve(new MemoryEventHistory(options)) },
  {
    name: 'RedisEventHistory',
    make: async (options) => RedisEventHistory.open({ ...options, ...(await redisHistories.connect()) }),
    cleanup: () => redisHistories.cleanup(),
  },
]);

runContract('Presence', presenceContract, [
  {
    // Two nodes sharing one table, as two hub processes will share Redis.
    name: 'MapPresence',
    make: () => {
      const table = new Map<string, PresenceEntry>();
      return Promise.resolve({ a: new MapPresence('n_a', table), b: new MapPresence('n_b', table), close: async () => undefined });
    },
  },
]);

// Two nodes on one key prefix, each with its own connection, so one can die alone.
const redisPresences = redisSeams();
const presenceTtlMs = 1000;
const redisNodes = new WeakMap<PresenceNodes, Redis>();
runContract('Presence', presenceContract, [
  {
    name: 'RedisPresence',
    make: async () => {
      const { redis: ra, keyPrefix } = await redisPresences.connect();
      const { redis: rb } = await redisPresences.connect();
      const a = new RedisPresence({ redis: ra, keyPrefix, nodeId: 'n_a', nodeTtlMs: presenceTtlMs });
      const b = new RedisPresence({ redis: rb, keyPrefix, nodeId: 'n_b', nodeTtlMs: presenceTtlMs });
      await Promise.all([a.start(), b.start()]);
      const nodes = { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
      redisNodes.set(nodes, rb);
      return nodes;
    },
    cleanup: () => redisPresences.cleanup(),
    // b's process gone: its connection drops, its heartbeat stops, and nothing is let go.
    properties: { nodeTtlMs: presenceTtlMs, crash: async (nodes) => redisNodes.get(nodes)!.disconnect() },
  },
]);

runContract('TunnelRouter', tunnelRouterContract, [
  // A real tunnel server on loopback TCP with real agent sessions (test/support/local-router-world.ts).
  { name: 'LocalTunnelRouter', make: localRouterWorld },
  // A front's router: agents on an edge in this process, reached over a real node link (test/support/cluster-router-world.ts).
  { name: 'ClusterTunnelRouter', make: clusterRouterWorld },
]);
