import type { MqttPersistence } from '../mqtt/persistence.js';
import type { Store } from './store.js';

/**
 * One durable database and what lives in it: the Store, and the MQTT broker's sessions, queues and
 * retained messages. Built by src/backends.ts from the config (SQLite today, PostgreSQL with the
 * scale-out); the rest of the hub sees only these interfaces, never the database handle.
 */
export interface StoreBackend {
  /** Migrated and ready. */
  readonly store: Store;
  /**
   * The broker's persistence, in the same database as the store (one connection, so their statements
   * never contend for the lock). One per backend; it is closed with it.
   */
  openMqttPersistence(): Promise<MqttPersistence>;
  /** Resolves when the database answers a trivial query; rejects with why not (readiness, /readyz). */
  ping(): Promise<void>;
  /** Closes the persistence opened here and the store. */
  close(): Promise<void>;
}
