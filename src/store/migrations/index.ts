/**
 * Schema migrations, defined in code so the built package needs no migration files on disk.
 *
 * Kept dialect-neutral (SQLite and PostgreSQL): only portable column types, no dialect-specific
 * defaults; the application sets every value, timestamps included. Timestamps are ms since the epoch in
 * `bigint` columns (an `integer` would overflow in PostgreSQL; SQLite gives `bigint` INTEGER affinity).
 * Note for the PostgreSQL store: `pg` returns int8 as strings unless a type parser is registered.
 *
 * Never edit a migration that has shipped; add the next one (`0002_...`). Kysely runs them in name order.
 */
import { Migrator, PostgresAdapter } from 'kysely';
import type { Kysely, Migration, MigrationProvider } from 'kysely';

const m0001Initial: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('users')
      .addColumn('id', 'text', (c) => c.primaryKey())
      // Stored lower-cased and trimmed by the Store, so a plain unique index is case-insensitive.
      .addColumn('email', 'text', (c) => c.notNull().unique())
      .addColumn('password_hash', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('devices')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      // Owner email as the device reports it; not a foreign key: a device may name a user not yet registered.
      .addColumn('email', 'text')
      .addColumn('secret_hash', 'text', (c) => c.notNull())
      .addColumn('info', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('last_seen_at', 'bigint')
      .execute();
    await db.schema.createIndex('devices_email_idx').on('devices').column('email').execute();

    await db.schema
      .createTable('tokens')
      .addColumn('token_hash', 'text', (c) => c.primaryKey())
      .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('tokens_expires_at_idx').on('tokens').column('expires_at').execute();
    // Foreign-key columns are not indexed automatically; the cascade on user delete needs this.
    await db.schema.createIndex('tokens_user_id_idx').on('tokens').column('user_id').execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('tokens').execute();
    await db.schema.dropTable('devices').execute();
    await db.schema.dropTable('users').execute();
  },
};

/** PostgreSQL has no `blob`; in SQLite `bytea` would get NUMERIC affinity, so each gets its own name. */
function binaryType(db: Kysely<unknown>): 'blob' | 'bytea' {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'bytea' : 'blob';
}

/** The MQTT broker's session state (src/mqtt/persistence.ts). JSON columns are `text`. */
const m0002Mqtt: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    const binary = binaryType(db);
    await db.schema
      .createTable('mqtt_sessions')
      .addColumn('client_id', 'text', (c) => c.primaryKey())
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('protocol_version', 'integer', (c) => c.notNull())
      // `bigint`: 0xFFFFFFFF ("never expires") overflows a PostgreSQL `integer`.
      .addColumn('expiry_interval_s', 'bigint', (c) => c.notNull())
      .addColumn('disconnected_at', 'bigint')
      .addColumn('subscriptions', 'text', (c) => c.notNull())
      .execute();
    // The expiry sweep looks only at disconnected sessions.
    await db.schema.createIndex('mqtt_sessions_disconnected_at_idx').on('mqtt_sessions').column('disconnected_at').execute();

    // `seq` is assigned by the application (monotonic per persistence instance). The primary key's index
    // (client_id, seq) serves every per-client query, so no separate client_id index: on the QoS 1
    // fan-out path each extra index is one more B-tree write per message.
    await db.schema
      .createTable('mqtt_queue')
      .addColumn('client_id', 'text', (c) => c.notNull())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('topic', 'text', (c) => c.notNull())
      .addColumn('payload', binary, (c) => c.notNull())
      .addColumn('qos', 'integer', (c) => c.notNull())
      .addColumn('retain', 'integer', (c) => c.notNull())
      .addColumn('properties', 'text')
      .addColumn('expires_at', 'bigint')
      .addColumn('packet_id', 'integer')
      .addColumn('released', 'integer', (c) => c.notNull())
      .addColumn('subscription_ids', 'text')
      .addPrimaryKeyConstraint('mqtt_queue_pk', ['client_id', 'seq'])
      .execute();

    await db.schema
      .createTable('mqtt_incoming_qos2')
      .addColumn('client_id', 'text', (c) => c.notNull())
      .addColumn('packet_id', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('mqtt_incoming_qos2_pk', ['client_id', 'packet_id'])
      .execute();

    await db.schema
      .createTable('mqtt_retained')
      .addColumn('topic', 'text', (c) => c.primaryKey())
      .addColumn('payload', binary, (c) => c.notNull())
      .addColumn('qos', 'integer', (c) => c.notNull())
      .addColumn('properties', 'text')
      .addColumn('expires_at', 'bigint')
      .execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('mqtt_retained').execute();
    await db.schema.dropTable('mqtt_incoming_qos2').execute();
    await db.schema.dropTable('mqtt_queue').execute();
    await db.schema.dropTable('mqtt_sessions').execute();
  },
};

/**
 * Tokens revoked before their expiry (logout, revocation), kept until they expire: the hub sends each
 * agent its owner's list, so a device serving the LAN without the hub refuses them too.
 */
const m0003RevokedTokens: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('revoked_tokens')
      .addColumn('token_hash', 'text', (c) => c.primaryKey())
      // Not a foreign key: the token row itself is gone, and a deleted user's revocations still hold.
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addColumn('revoked_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('revoked_tokens_user_id_idx').on('revoked_tokens').columns(['user_id', 'revoked_at']).execute();
    await db.schema.createIndex('revoked_tokens_expires_at_idx').on('revoked_tokens').column('expires_at').execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('revoked_tokens').execute();
  },
};

/** Every migration, by name. */
export const migrations: Readonly<Record<string, Migration>> = Object.freeze({
  '0001_initial': m0001Initial,
  '0002_mqtt': m0002Mqtt,
  '0003_revoked_tokens': m0003RevokedTokens,
});

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve({ ...migrations }),
};

/** Brings the schema up to date; throws (with the failing migration named) if a migration fails. */
export async function migrateToLatest<DB>(db: Kysely<DB>): Promise<void> {
  const { error, results } = await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    throw new Error(failed ? `Migration ${failed} failed` : 'Migrations failed', { cause: error });
  }
}
