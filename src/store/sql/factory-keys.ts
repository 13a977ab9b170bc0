/** SqlStore's factory-key queries (table `factory_keys`, migration 0004_factory). */
import type { Kysely, Selectable } from 'kysely';
import type { FactoryKeyRecord } from '../store.js';
import type { FactoryKeysTable } from './tables.js';

function toFactoryKey(row: Selectable<FactoryKeysTable>): FactoryKeyRecord {
  return {
    id: row.id,
    name: row.name,
    keyHash: row.key_hash,
    derivationKey: row.derivation_key,
    createdAt: row.created_at,
    rotatedAt: row.rotated_at,
    revokedAt: row.revoked_at,
  };
}

export class FactoryKeyQueries {
  readonly #db: Kysely<{ factory_keys: FactoryKeysTable }>;

  constructor(db: Kysely<{ factory_keys: FactoryKeysTable }>) {
    this.#db = db;
  }

  async create(key: { id: string; name: string; keyHash: string; derivationKey: string }, now: number): Promise<FactoryKeyRecord> {
    const row = { id: key.id, name: key.name, key_hash: key.keyHash, derivation_key: key.derivationKey, created_at: now, rotated_at: null, revoked_at: null };
    await this.#db.insertInto('factory_keys').values(row).execute();
    return toFactoryKey(row);
  }

  async get(id: string): Promise<FactoryKeyRecord | undefined> {
    const row = await this.#db.selectFrom('factory_keys').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toFactoryKey(row);
  }

  async getByHash(keyHash: string): Promise<FactoryKeyRecord | undefined> {
    const row = await this.#db.selectFrom('factory_keys').selectAll().where('key_hash', '=', keyHash).executeTakeFirst();
    return row && toFactoryKey(row);
  }

  async list(): Promise<FactoryKeyRecord[]> {
    const rows = await this.#db.selectFrom('factory_keys').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(toFactoryKey);
  }

  async rotate(id: string, keyHash: string, at: number): Promise<boolean> {
    const r = await this.#db
      .updateTable('factory_keys')
      .set({ key_hash: keyHash, rotated_at: at })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async revoke(id: string, at: number): Promise<boolean> {
    // coalesce: revoking again keeps the first time.
    const r = await this.#db
      .updateTable('factory_keys')
      .set((eb) => ({ revoked_at: eb.fn.coalesce('revoked_at', eb.val(at)) }))
      .where('id', '=', id)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }
}
