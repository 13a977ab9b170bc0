/**
 * The Store on PostgreSQL (Kysely + pg), for hubs of several nodes on one database (issue 13). The
 * queries are SqlStore's, shared with SQLite; this file opens the pool and says how PostgreSQL differs.
 *
 * SQLite's store is atomic because its one connection serialises every statement. Here a pool runs
 * statements of many requests (and of many nodes) at once, so every multi-statement operation runs
 * SERIALIZABLE and is rerun when PostgreSQL aborts it for a conflict: the outcome is as if the
 * operations had run one at a time, whichever nodes made them.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { SqlDialect } from '../sql/dialect.js';
import { SqlStore, type StoreTables } from '../sql/sql-store.js';

/** PostgreSQL's type OID of int8 (`bigint`): every timestamp column. */
const INT8_OID = 20;
/** serialization_failure and deadlock_detected: the transaction did nothing and may simply run again. */
const RETRYABLE_CODES = new Set(['40001', '40P01']);
/** Each conflict lets at least one contender commit, so this many attempts outlast any burst the hub makes. */
const MAX_ATTEMPTS = 50;
const RETRY_MAX_DELAY_MS = 50;

function errorCode(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code;
}

export const postgresDialect: SqlDialect = {
  isUniqueViolation: (err) => errorCode(err) === '23505',
  async transaction(db, fn) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await db.transaction().setIsolationLevel('serializable').execute(fn);
      } catch (err) {
        if (!RETRYABLE_CODES.has(errorCode(err) as string) || attempt >= MAX_ATTEMPTS) throw err;
        // Jittered, so the contenders of one conflict do not collide again in step.
        await delay(Math.random() * Math.min(RETRY_MAX_DELAY_MS, 2 ** attempt));
      }
    }
  },
};

/** int8 as a JavaScript number (ms timestamps and seqs are far below 2^53); every other type as pg parses it. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

export interface PostgresOptions {
  /** Connections in the pool (default 10). */
  maxConnections?: number;
  /**
   * An idle connection failed (PostgreSQL restarted, the network dropped it): the pool drops it and
   * opens a new one when next needed; this only hears of it. Never an uncaught exception.
   */
  onIdleError?: (err: Error) => void;
}

/** How long a new connection may take before a query waiting for it fails. */
const CONNECT_TIMEOUT_MS = 5000;

/** Opens a pool on `url` (postgres://...) and, through SqlStore, the Store's queries on it. */
export function openPostgresPool(url: string, options: PostgresOptions = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: options.maxConnections ?? 10, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, types });
  pool.on('error', (err) => options.onIdleError?.(err));
  return pool;
}

export class PostgresStore extends SqlStore {
  /** A Store on its own pool to `url`; close() ends the pool. Call migrate() before use. */
  static open(url: string, options: PostgresOptions = {}): PostgresStore {
    const pool = openPostgresPool(url, options);
    return new PostgresStore(new Kysely<StoreTables>({ dialect: new PostgresDialect({ pool }) }), postgresDialect);
  }

  /** Resolves once PostgreSQL answers `select 1`; rejects after `timeoutMs` otherwise. */
  async ping(timeoutMs = 2000): Promise<void> {
    const controller = new AbortController();
    const timeout = delay(timeoutMs, undefined, { signal: controller.signal }).then(() => {
      throw new Error(`PostgreSQL did not answer within ${timeoutMs} ms`);
    });
    try {
      await Promise.race([sql`select 1`.execute(this.db), timeout]);
    } finally {
      controller.abort();
      timeout.catch(() => undefined);
    }
  }
}
