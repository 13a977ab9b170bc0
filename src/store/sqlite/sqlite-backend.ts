import { sql } from 'kysely';
import { TokenSigner } from '../../core/auth/token-signer.js';
import { migratedBackend, type StoreBackend } from '../store-backend.js';
import { SqliteMqttPersistence } from './mqtt-persistence.js';
import { SqliteStore } from './sqlite-store.js';

/**
 * The embedded StoreBackend: one SQLite file (or `':memory:'`), migrated, shared by the store and the
 * broker. The token-signing key stays a file in the data folder (TokenSigner.open).
 */
export async function openSqliteBackend(file: string): Promise<StoreBackend> {
  const store = SqliteStore.open(file);
  return migratedBackend(store, {
    persistence: () => SqliteMqttPersistence.on(store.db),
    openTokenSigner: (dataDir) => Promise.resolve(TokenSigner.open(dataDir)),
    async ping() {
      await sql`select 1`.execute(store.db);
    },
  });
}
