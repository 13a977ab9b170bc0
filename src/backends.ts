/**
 * The one place that picks implementations (ARCHITECTURE.md "Seams"): the Store and the MQTT
 * persistence in its database, the Bus, Presence, the relay's response cache, the failed-attempt
 * limits and the SSE event history. createHub and the CLI's admin commands get them here, so nothing
 * else decides "SQLite" or "in this process". With `redis` set, the state nodes share (bus, presence,
 * and what is moved there) lives in Redis (src/cluster/); without it, in this process.
 */
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { RedisAttemptLimiter } from './cluster/redis-attempt-limiter.js';
import { RedisBus } from './cluster/redis-bus.js';
import { openRedis } from './cluster/redis-connection.js';
import { RedisEventHistory } from './cluster/redis-event-history.js';
import { RedisPresence } from './cluster/redis-presence.js';
import { RedisResponseCache } from './cluster/redis-response-cache.js';
import type { Bus } from './core/bus.js';
import { FailureLimiter, type AttemptLimiter, type NamedLimiterOptions } from './core/failure-limiter.js';
import { LocalBus, type BusErrorHandler } from './core/local-bus.js';
import { MapPresence, type NodeDirectory, type Presence } from './core/presence.js';
import { newId } from './core/secrets.js';
import { MemoryEventHistory, type EventHistory, type EventHistoryOptions } from './http/event-history.js';
import { MemoryResponseCache, type ResponseCache } from './relay/cache.js';
import { openPostgresBackend } from './store/postgres/postgres-backend.js';
import { openSqliteBackend } from './store/sqlite/sqlite-backend.js';
import type { StoreBackend } from './store/store-backend.js';

/** The database file under the data folder (`--data`). */
export const DATABASE_FILE = 'cloudrest.db';

/** Where the durable state is: the SQLite file under `data`, or a PostgreSQL database. */
export interface StoreLocation {
  /** The data folder (`--data`). */
  data: string;
  /** `--store`: 'sqlite' (the default: the file under `data`) or postgres://... / postgresql://... */
  store?: string;
}

/**
 * The store and the MQTT persistence of its database, migrated: what the hub and the CLI's admin
 * commands use. A `store` that is neither 'sqlite' nor a PostgreSQL URL is an error naming the flag.
 */
export function openStoreBackend(where: StoreLocation): Promise<StoreBackend> {
  const store = where.store ?? 'sqlite';
  if (store === 'sqlite') return openSqliteBackend(join(where.data, DATABASE_FILE));
  if (/^postgres(ql)?:\/\//i.test(store)) return openPostgresBackend(store);
  // The value is not echoed: a mistyped URL may still carry a password.
  return Promise.reject(new Error('--store (config key store, CLOUDREST_STORE) must be sqlite or a postgres://USER@HOST:PORT/DB URL'));
}

/** The part of the hub's config the backends are chosen and sized from. */
export interface BackendsConfig extends StoreLocation {
  /** Total bytes of the relay's response cache; 0 turns it off. */
  cacheMaxBytes: number;
  cacheMaxEntryBytes: number;
  /** redis://...: the state nodes share; undefined keeps all of it in this process. */
  redis?: string | undefined;
  redisKeyPrefix: string;
  /** This node's id; a random one when undefined. */
  nodeId?: string | undefined;
  nodeTtlMs: number;
}

export interface Backends extends StoreBackend {
  readonly bus: Bus;
  readonly presence: Presence;
  /** The cluster's nodes and what they advertise; undefined when embedded (one node, no directory). */
  readonly nodes: NodeDirectory | undefined;
  /** Relayed GET responses; undefined when the cache is off (`cacheMaxBytes` 0). */
  readonly responseCache: ResponseCache | undefined;
  /** A failed-attempt limit (login, device secrets, factory keys): one per use. */
  attemptLimiter(options: NamedLimiterOptions): AttemptLimiter;
  /** The SSE event history behind Last-Event-ID (a shared one is opened on Redis first). */
  eventHistory(options: EventHistoryOptions): EventHistory | Promise<EventHistory>;
  /** The Redis command connection and this node's place in it (the MQTT routes and sessions, src/mqtt/cluster/); undefined when embedded. */
  readonly redis: SharedRedis | undefined;
  /** Each backend this node needs, reachable or not and why (GET /readyz). */
  health(): Promise<BackendHealth[]>;
  /** Closes the bus, then the store backend. */
  close(): Promise<void>;
}

export interface SharedRedis {
  readonly connection: Redis;
  readonly keyPrefix: string;
  readonly nodeId: string;
  readonly nodeTtlMs: number;
}

/** One backend as GET /readyz reports it. */
export interface BackendHealth {
  backend: 'store' | 'redis';
  ok: boolean;
  /** Why it is not reachable. */
  error?: string;
}

/** Failures of the shared state (Redis away) are reported at most this often. */
const REPORT_INTERVAL_MS = 10_000;

/** How long a readiness probe may take: a backend slower than this counts as down. */
const PROBE_TIMEOUT_MS = 2000;

async function probe(backend: BackendHealth['backend'], ping: () => Promise<unknown>): Promise<BackendHealth> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS)));
  try {
    await Promise.race([ping(), timeout]);
    return { backend, ok: true };
  } catch (err) {
    return { backend, ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

export interface BackendsHooks {
  onBusError: BusErrorHandler;
  /** Told when shared state could not be kept up to date (a heartbeat to Redis failed); retried by itself. */
  onBackendError?(err: unknown, backend: string): void;
}

export async function openBackends(config: BackendsConfig, hooks: BackendsHooks): Promise<Backends> {
  const storage = await openStoreBackend(config);
  if (config.redis !== undefined) {
    try {
      return await openRedisBackends(config, config.redis, storage, hooks);
    } catch (err) {
      await storage.close();
      throw err;
    }
  }
  const bus = new LocalBus(hooks.onBusError);
  const presence = new MapPresence(config.nodeId ?? newId('n_'));
  const responseCache = config.cacheMaxBytes > 0 ? new MemoryResponseCache({ maxBytes: config.cacheMaxBytes, maxEntryBytes: config.cacheMaxEntryBytes }) : undefined;
  return {
    store: storage.store,
    openMqttPersistence: () => storage.openMqttPersistence(),
    openTokenSigner: (dataDir) => storage.openTokenSigner(dataDir),
    ping: () => storage.ping(),
    bus,
    presence,
    nodes: undefined,
    redis: undefined,
    responseCache,
    attemptLimiter: (options) => new FailureLimiter(options),
    eventHistory: (options) => new MemoryEventHistory(options),
    health: async () => [await probe('store', () => storage.ping())],
    async close() {
      await bus.close();
      await storage.close();
    },
  };
}

/**
 * The shared state in Redis: one command connection for every part, and the bus's subscriber
 * connection beside it (docs/scale-out.md "Redis").
 */
async function openRedisBackends(config: BackendsConfig, url: string, storage: StoreBackend, hooks: BackendsHooks): Promise<Backends> {
  const redis = await openRedis(url);
  const keyPrefix = config.redisKeyPrefix;
  // While Redis is away every heartbeat and publish fails: one report per interval is enough.
  let reportedAt = -Infinity;
  const onError = (err: unknown): void => {
    const now = Date.now();
    if (now - reportedAt < REPORT_INTERVAL_MS) return;
    reportedAt = now;
    hooks.onBackendError?.(err, 'redis');
  };
  try {
    const bus = await RedisBus.open({ redis, keyPrefix, onError: hooks.onBusError, onPublishError: onError });
    const presence = new RedisPresence({ redis, keyPrefix, nodeId: config.nodeId ?? newId('n_'), nodeTtlMs: config.nodeTtlMs, onError });
    await presence.start();
    // Shared by every node; its total size is Redis's maxmemory (docs/scale-out.md "Redis").
    const responseCache = config.cacheMaxBytes > 0 ? new RedisResponseCache({ redis, keyPrefix, maxEntryBytes: config.cacheMaxEntryBytes }) : undefined;
    return {
      store: storage.store,
      openMqttPersistence: () => storage.openMqttPersistence(),
      openTokenSigner: (dataDir) => storage.openTokenSigner(dataDir),
      bus,
      presence,
      nodes: presence,
      redis: { connection: redis, keyPrefix, nodeId: presence.nodeId, nodeTtlMs: config.nodeTtlMs },
      responseCache,
      attemptLimiter: (options) => new RedisAttemptLimiter({ ...options, redis, keyPrefix, onError }),
      eventHistory: (options) => RedisEventHistory.open({ ...options, redis, keyPrefix }),
      ping: () => storage.ping(),
      health: () => Promise.all([probe('store', () => storage.ping()), probe('redis', () => redis.ping())]),
      async close() {
        await presence.close();
        await bus.close();
        await redis.quit().catch(() => redis.disconnect());
        await storage.close();
      },
    };
  } catch (err) {
    redis.disconnect();
    throw err;
  }
}
