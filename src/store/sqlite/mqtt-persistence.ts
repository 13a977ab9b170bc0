/**
 * The embedded MqttPersistence: the broker's tables (migration 0002_mqtt) in the hub's SQLite file,
 * through the store's single Kysely connection (SqlMqttPersistence has the queries).
 *
 * Sharing that connection matters: better-sqlite3 is synchronous, so a second connection to the same file
 * waiting on the write lock would block the event loop while the first one's transaction, itself waiting
 * on the event loop, could never commit.
 */
import type { Kysely } from 'kysely';
import { SqlMqttPersistence, type MqttSqlDialect } from '../sql/mqtt-persistence.js';
import { SqliteStore } from './sqlite-store.js';

/**
 * Seqs from a counter in this process, started past the highest stored: one process has the file (and
 * one instance its database, see SqliteBackend), so a counter is safe and costs no statement.
 */
function sqliteMqttDialect(lastSeq: number): MqttSqlDialect {
  let last = lastSeq;
  return {
    nextSeqs(_db, n) {
      const first = last + 1;
      last += n;
      return Promise.resolve(Array.from({ length: n }, (_v, i) => first + i));
    },
    placeholder: () => '?',
    textBytes: (column) => `length(cast(${column} as blob))`,
  };
}

export class SqliteMqttPersistence extends SqlMqttPersistence {
  /**
   * Uses a database someone else opened and migrated, normally `SqliteStore#db`; close() leaves it open.
   * One instance per database: seqs are assigned here.
   */
  static on(db: Kysely<unknown>): Promise<SqliteMqttPersistence> {
    // The tables are migration 0002_mqtt's, which the database's owner has run.
    return SqliteMqttPersistence.#create(db, () => Promise.resolve());
  }

  /** Opens (creating and migrating if needed) a database file of its own; close() closes it. */
  static async open(file: string): Promise<SqliteMqttPersistence> {
    const store = SqliteStore.open(file);
    try {
      await store.migrate();
      return await SqliteMqttPersistence.#create(store.db, () => store.close());
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  static async #create(db: Kysely<unknown>, onClose: () => Promise<void>): Promise<SqliteMqttPersistence> {
    const queue = db as Kysely<{ mqtt_queue: { seq: number } }>;
    const row = await queue.selectFrom('mqtt_queue').select((eb) => eb.fn.max('seq').as('max')).executeTakeFirst();
    return new SqliteMqttPersistence(db, sqliteMqttDialect(Number(row?.max ?? 0)), onClose);
  }
}
