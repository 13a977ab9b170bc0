/**
 * Every seam's contract suite against every implementation of it (ARCHITECTURE.md "Seams"), through
 * the one runner in test/support/contracts.ts. A new backend (PostgreSQL Store, Redis Bus, Cache,
 * limits, history) is one more entry in its seam's list. What a single implementation promises beyond
 * its interface is tested next to it (src/core/local-bus.test.ts, src/store/sqlite/*.test.ts, ...).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { storeContract } from './store-contract.js';
import { presenceContract } from './presence-contract.js';
import { runContract } from './support/contracts.js';
import { localRouterWorld } from './support/local-router-world.js';
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

runContract('Bus', busContract, [
  { name: 'LocalBus', make: (hooks) => Promise.resolve(new LocalBus(hooks.onError)) },
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

runContract('ResponseCache', responseCacheContract, [
  { name: 'MemoryResponseCache', make: () => Promise.resolve(new MemoryResponseCache({ maxBytes: 1 << 20, maxEntryBytes: 1 << 16 })) },
]);

runContract('AttemptLimiter', attemptLimiterContract, [
  { name: 'FailureLimiter', make: (options) => Promise.resolve(new FailureLimiter(options)) },
]);

runContract('EventHistory', eventHistoryContract, [
  { name: 'MemoryEventHistory', make: (options) => Promise.resolve(new MemoryEventHistory(options)) },
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

runContract('TunnelRouter', tunnelRouterContract, [
  // A real tunnel server on loopback TCP with real agent sessions (test/support/local-router-world.ts).
  { name: 'LocalTunnelRouter', make: localRouterWorld },
]);
