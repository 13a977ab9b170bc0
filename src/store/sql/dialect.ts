/**
 * What differs between the databases SqlStore runs on; the queries themselves are the same Kysely
 * code on SQLite (src/store/sqlite/) and PostgreSQL (src/store/postgres/).
 */
import type { Kysely, Transaction } from 'kysely';

export interface SqlDialect {
  /** Whether `err` is the driver's unique-key (or primary-key) violation. */
  isUniqueViolation(err: unknown): boolean;
  /**
   * Runs `fn` in a transaction that no concurrent statement of any connection can interleave with
   * (the Store's atomic operations rely on it). `fn` may run more than once (PostgreSQL reruns it on
   * a serialization failure), so it must have no effect outside the database.
   */
  transaction<DB, T>(db: Kysely<DB>, fn: (trx: Transaction<DB>) => Promise<T>): Promise<T>;
}
