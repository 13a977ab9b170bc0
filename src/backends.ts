/**
 * The one place that picks implementations (ARCHITECTURE.md "Seams"): the Store and the MQTT
 * persistence in its database, the Bus, Presence, the relay's response cache, the failed-attempt
 * limits and the SSE event history. createHub and the CLI's admin commands get them here, so nothing
 * else decides "SQLite" or "in this process". Today every choice is the embedded one; the scaled
 * ones (PostgreSQL, Redis) are picked here from the config when they exist.
 */
import { join } from 'node:path';
import type { Bus } from './core/bus.js';
import { FailureLimiter, type AttemptLimiter, type FailureLimiterOptions } from './core/failure-limiter.js';
import { LocalBus, type BusErrorHandler } from './core/local-bus.js';
import { MapPresence, type Presence } from './core/presence.js';
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
}

export interface Backends extends StoreBackend {
  readonly bus: Bus;
  readonly presence: Presence;
  /** Relayed GET responses; undefined when the cache is off (`cacheMaxBytes` 0). */
  readonly responseCache: ResponseCache | undefined;
  /** A failed-attempt limit (login, device secrets, factory keys): one per use. */
  attemptLimiter(options: FailureLimiterOptions): AttemptLimiter;
  /** The SSE event history behind Last-Event-ID. */
  eventHistory(options: EventHistoryOptions): EventHistory;
  /** Closes the bus, then the store backend. */
  close(): Promise<void>;
}

export async function openBackends(config: BackendsConfig, hooks: { onBusError: BusErrorHandler }): Promise<Backends> {
  const storage = await openStoreBackend(config);
  const bus = new LocalBus(hooks.onBusError);
  const presence = new MapPresence(newId('n_'));
  const responseCache = config.cacheMaxBytes > 0 ? new MemoryResponseCache({ maxBytes: config.cacheMaxBytes, maxEntryBytes: config.cacheMaxEntryBytes }) : undefined;
  return {
    store: storage.store,
    openMqttPersistence: () => storage.openMqttPersistence(),
    openTokenSigner: (dataDir) => storage.openTokenSigner(dataDir),
    ping: () => storage.ping(),
    bus,
    presence,
    responseCache,
    attemptLimiter: (options) => new FailureLimiter(options),
    eventHistory: (options) => new MemoryEventHistory(options),
    async close() {
      await bus.close();
      await storage.close();
    },
  };
}
