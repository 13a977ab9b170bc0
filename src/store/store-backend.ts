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

/** What one database's backend is made of, beside its migrated store. */
export interface BackendParts {
  /** Opens the broker's persistence on the store's connection (called at most once). */
  persistence(): MqttPersistence | Promise<MqttPersistence>;
  openTokenSigner(dataDir: string): Promise<TokenSigner>;
  ping(): Promise<void>;
}

/** Migrates `store` (closing it if that fails) and wraps it with its parts as a StoreBackend. */
export async function migratedBackend(store: Store, parts: BackendParts): Promise<StoreBackend> {
  try {
    await store.migrate();
  } catch (err) {
    await store.close();
    throw err;
  }
  let persistence: MqttPersistence | undefined;
  return {
    store,
    async openMqttPersistence() {
      // One per backend: the broker owns it (and on SQLite it hands out queue seqs, which two would clash on).
      if (persistence) throw new Error('the MQTT persistence of this store is already open');
      persistence = await parts.persistence();
      return persistence;
    },
    openTokenSigner: (dataDir) => parts.openTokenSigner(dataDir),
    ping: () => parts.ping(),
    async close() {
      await persistence?.close();
      await store.close();
    },
  };
}
