import type { TokenSigner } from '../../core/auth/token-signer.js';
import { migratedBackend, type StoreBackend } from '../store-backend.js';
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
  return migratedBackend(store, {
    // Other nodes have their own persistence; queue seqs come from the database.
    persistence: () => PostgresMqttPersistence.on(store.db),
    openTokenSigner: (): Promise<TokenSigner> => openPostgresTokenSigner(store.db),
    ping: () => store.ping(),
  });
}
