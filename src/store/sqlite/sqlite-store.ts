/**
 * The embedded Store: one SQLite file through better-sqlite3, queried with Kysely (SqlStore).
 *
 * better-sqlite3 is synchronous; Kysely's SqliteDialect serialises queries on the single connection, so
 * statements never interleave. WAL lets readers in other processes (backups, the CLI) proceed meanwhile.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { SqlDialect } from '../sql/dialect.js';
import { SqlStore, type StoreTables } from '../sql/sql-store.js';

/** SQLite's side of SqlDialect: one serialised connection makes a plain transaction atomic. */
export const sqliteDialect: SqlDialect = {
  isUniqueViolation(err) {
    const code = (err as { code?: unknown } | null)?.code;
    return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
  },
  transaction: (db, fn) => db.transaction().execute(fn),
};

export class SqliteStore extends SqlStore {
  /** Opens (creating if needed) the database file; `':memory:'` gives a private in-memory database. */
  static open(file: string): SqliteStore {
    const inMemory = file === ':memory:' || file === '';
    if (!inMemory) mkdirSync(dirname(file), { recursive: true });
    const sqlite = new Database(file);
    try {
      // WAL: readers never block the writer; NORMAL sync is durable in WAL mode except on power loss.
      if (!inMemory) sqlite.pragma('journal_mode = WAL');
      sqlite.pragma('synchronous = NORMAL');
      sqlite.pragma('busy_timeout = 5000');
      // Off by default in SQLite, per connection; tokens rely on ON DELETE CASCADE.
      sqlite.pragma('foreign_keys = ON');
    } catch (err) {
      sqlite.close();
      throw err;
    }
    // One connection: SqliteMqttPersistence shares it (SqlStore#db), so their statements never contend for the lock.
    return new SqliteStore(new Kysely<StoreTables>({ dialect: new SqliteDialect({ database: sqlite }) }), sqliteDialect);
  }
}
