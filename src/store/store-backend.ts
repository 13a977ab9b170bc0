import type { TokenSigner } from '../core/auth/token-signer.js';
import type { MqttPersistence } from '../mqtt/persistence.js';
import type { Store } from './store.js';

/**
 * One durable database and what lives in it: the Store, the MQTT broker's sessions, queues and
 * retained messages, and the token-signing key. Built by src/backends.ts from the config (SQLite, or
 * PostgreSQL shared by the nodes of a scaled-out hub); the rest of the hub sees only these
 * interfaces, never the database handle.
 */
export interface StoreBackend {
  /** Migrated and ready. */
  readonly store: Store;
  /**
   * The broker's persistence, in the same database as the store (one connection, so their statements
   * never contend for the lock). One per backend; it is closed with it.
   */
  openMqttPersistence(): Promise<MqttPersistence>;
  /**
   * The signer of the hub's tokens, its key created on first use: a file in `dataDir` (`--data`) on
   * SQLite; in the database on PostgreSQL, so every node of the hub signs with the one key.
   */
  openTokenSigner(dataDir: string): Promise<TokenSigner>;
  /** Resolves when the database answers (a trivial query, bounded by a short timeout); rejects otherwise (/readyz). */
  ping(): Promise<void>;
  /** Closes the persistence opened here and the store. */
  close(): Promise<void>;
}
