import type { TokenSigner } from '../../core/auth/token-signer.js';
import type { MqttPersistence } from '../../mqtt/persistence.js';
import type { StoreBackend } from '../store-backend.js';
import { PostgresMqttPersistence } from './mqtt-persistence.js';
import { PostgresStore, type PostgresOptions } from './postgres-store.js';
import { openPostgresTokenSigner } from './signing-key.js';

/**
 * The scaled StoreBackend: one PostgreSQL database (`postgres://...`) that every hub node shares,
 * migrated (Kysely serialises concurrent migrations with an advisory lock), one pool per process.
 * The pool outlives PostgreSQL restarts: a broken connection is dropped and the next query opens a new one.
 */
export async function openPostgresBackend(url: string, options: PostgresOptions = {}): Promise<StoreBackend> {
  const store = PostgresStore.open(url, options);
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
      // One per backend, as on SQLite (the broker owns it); other nodes have their own, seqs come from the database.
      if (persistence) throw new Error('the MQTT persistence of this store is already open');
      persistence = PostgresMqttPersistence.on(store.db);
      return persistence;
    },
    openTokenSigner: (): Promise<TokenSigner> => openPostgresTokenSigner(store.db),
    ping: () => store.ping(),
    async close() {
      await persistence?.close();
      await store.close();
    },
  };
}
