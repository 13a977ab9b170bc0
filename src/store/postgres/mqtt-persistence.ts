/**
 * The MqttPersistence on PostgreSQL: the broker's tables in the hub's PostgreSQL database, through the
 * store's pool (SqlMqttPersistence has the queries). Several hub nodes may share the database: queue
 * seqs come from the sequence `mqtt_queue_seq` (migration 0009), never from a counter in a process.
 */
import { Kysely, PostgresDialect, sql } from 'kysely';
import { migrateToLatest } from '../migrations/index.js';
import { SqlMqttPersistence, type MqttSqlDialect } from '../sql/mqtt-persistence.js';
import { openPostgresPool, type PostgresOptions } from './postgres-store.js';
import type { RetainedQuotas } from '../../mqtt/retained-usage.js';
import type { SharesRetained } from '../../mqtt/retained-source.js';
import { PostgresRetained } from './postgres-retained.js';

const postgresMqttDialect: MqttSqlDialect = {
  async nextSeqs(db, n) {
    const { rows } = await sql<{ seq: number }>`select nextval('mqtt_queue_seq') as seq from generate_series(1, ${n})`.execute(db);
    // A sequence's values are unique; sorted, they are handed to the batch's rows in call order.
    return rows.map((r) => Number(r.seq)).sort((a, b) => a - b);
  },
  placeholder: (i) => `$${i}`,
  textBytes: (column) => `octet_length(${column})`,
};

export class PostgresMqttPersistence extends SqlMqttPersistence implements SharesRetained {
  readonly #pg: Kysely<unknown>;

  private constructor(db: Kysely<unknown>, onClose: () => Promise<void>) {
    super(db, postgresMqttDialect, onClose);
    this.#pg = db;
  }

  /** Every node reads the one table (issue 14): no retained message in any node's memory. */
  sharedRetained(quotas: RetainedQuotas): PostgresRetained {
    return new PostgresRetained(this.#pg, quotas);
  }

  /** Uses a database someone else opened and migrated, normally `PostgresStore#db`; close() leaves it open. */
  static on(db: Kysely<unknown>): PostgresMqttPersistence {
    return new PostgresMqttPersistence(db, () => Promise.resolve());
  }

  /** Opens a pool of its own on `url`, migrating the database if needed; close() ends it. */
  static async open(url: string, options: PostgresOptions = {}): Promise<PostgresMqttPersistence> {
    const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: openPostgresPool(url, options) }) });
    try {
      await migrateToLatest(db);
    } catch (err) {
      await db.destroy();
      throw err;
    }
    return new PostgresMqttPersistence(db, () => db.destroy());
  }
}
