import { sql } from 'kysely';
import { TokenSigner } from '../../core/auth/token-signer.js';
import type { MqttPersistence } from '../../mqtt/persistence.js';
import type { StoreBackend } from '../store-backend.js';
import { SqliteMqttPersistence } from './mqtt-persistence.js';
import { SqliteStore } from './sqlite-store.js';

/**
 * The embedded StoreBackend: one SQLite file (or `':memory:'`), migrated, shared by the store and the
 * broker. The token-signing key stays a file in the data folder (TokenSigner.open).
 */
export async function openSqliteBackend(file: string): Promise<StoreBackend> {
  const store = SqliteStore.open(file);
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
      // SqliteMqttPersistence hands out queue seqs: two instances on one database would clash.
      if (persistence) throw new Error('the MQTT persistence of this store is already open');
      persistence = await SqliteMqttPersistence.on(store.db);
      return persistence;
    },
    openTokenSigner: (dataDir) => Promise.resolve(TokenSigner.open(dataDir)),
    async ping() {
      await sql`select 1`.execute(store.db);
    },
    async close() {
      await persistence?.close();
      await store.close();
    },
  };
}
