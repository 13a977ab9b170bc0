/**
 * Schema migrations, defined in code so the built package needs no migration files on disk.
 *
 * Kept dialect-neutral (SQLite and PostgreSQL): only portable column types, no dialect-specific
 * defaults; the application sets every value, timestamps included. Timestamps are ms since the epoch in
 * `bigint` columns (an `integer` would overflow in PostgreSQL; SQLite gives `bigint` INTEGER affinity).
 * `pg` returns int8 as strings by default; PostgresStore's pool parses them as numbers.
 *
 * Never edit a migration that has shipped; add the next one (`0002_...`). Kysely runs them in name order.
 */
import { Migrator, PostgresAdapter, sql } from 'kysely';
import type { Kysely, Migration, MigrationProvider } from 'kysely';
import { m0010MqttRetainedShared } from './0010-mqtt-retained-shared.js';

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
 * Accounts (issue 4): pending email confirmations (the seed's ownership with "confirmed" = false; a
 * user row exists only once its email is confirmed) and when each access token was last used.
 */
const m0003Accounts: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('tokens').addColumn('last_used_at', 'bigint').execute();

    await db.schema
      .createTable('email_confirmations')
      // SHA-256 (hex) of the random id in the mailed link; the id itself is never stored.
      .addColumn('id_hash', 'text', (c) => c.primaryKey())
      .addColumn('email', 'text', (c) => c.notNull())
      // Not a foreign key: the confirmation outlives a deleted device (its email is what matters).
      .addColumn('device_id', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addColumn('used_at', 'bigint')
      .execute();
    // The mail rate limits count recent rows per email, per device and in all.
    await db.schema.createIndex('email_confirmations_email_idx').on('email_confirmations').columns(['email', 'created_at']).execute();
    await db.schema.createIndex('email_confirmations_device_idx').on('email_confirmations').columns(['device_id', 'created_at']).execute();
    await db.schema.createIndex('email_confirmations_created_idx').on('email_confirmations').column('created_at').execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('email_confirmations').execute();
    await db.schema.alterTable('tokens').dropColumn('last_used_at').execute();
  },
};

/**
 * Factory provisioning (seed 002 "Device Factory Provisioning"): factory keys, and per device which key
 * provisioned it and whether it is revoked. A factory key is stored as the SHA-256 of its value; its
 * derivation key (random, per factory key) lets the hub give the same device secret again when the
 * factory re-provisions a device, while only the secret's hash is stored with the device.
 */
const m0004Factory: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('factory_keys')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('key_hash', 'text', (c) => c.notNull().unique())
      .addColumn('derivation_key', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('rotated_at', 'bigint')
      .addColumn('revoked_at', 'bigint')
      .execute();
    // Not a foreign key: factory keys are revoked, never deleted, and SQLite cannot add one by ALTER.
    await db.schema.alterTable('devices').addColumn('factory_key_id', 'text').execute();
    await db.schema.alterTable('devices').addColumn('revoked_at', 'bigint').execute();
    await db.schema.createIndex('devices_factory_key_id_idx').on('devices').column('factory_key_id').execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropIndex('devices_factory_key_id_idx').execute();
    await db.schema.alterTable('devices').dropColumn('revoked_at').execute();
    await db.schema.alterTable('devices').dropColumn('factory_key_id').execute();
    await db.schema.dropTable('factory_keys').execute();
  },
};

/**
 * Tokens revoked before their expiry (logout, revocation), kept until they expire: the hub sends each
 * agent its owner's list, so a device serving the LAN without the hub refuses them too.
 */
const m0005RevokedTokens: Migration = {
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

/**
 * OAuth 2.0 provider (RFC 6749): registered clients, users' grants (consent), authorization codes,
 * access and refresh tokens, and a revocation log every hub node reads to evict cached sessions.
 * Codes and tokens are stored as SHA-256 hashes, client secrets too; scopes as space-separated text.
 */
const m0006OAuth: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('oauth_clients')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('redirect_uris', 'text', (c) => c.notNull()) // JSON array of exact URIs
      .addColumn('secret_hash', 'text') // null: a public client (PKCE required)
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('oauth_grants')
      .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('client_id', 'text', (c) => c.notNull().references('oauth_clients.id').onDelete('cascade'))
      .addColumn('scope', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('oauth_grants_pk', ['user_id', 'client_id'])
      .execute();
    await db.schema.createIndex('oauth_grants_client_id_idx').on('oauth_grants').column('client_id').execute();

    await db.schema
      .createTable('oauth_codes')
      .addColumn('code_hash', 'text', (c) => c.primaryKey())
      .addColumn('client_id', 'text', (c) => c.notNull().references('oauth_clients.id').onDelete('cascade'))
      .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('redirect_uri', 'text', (c) => c.notNull())
      .addColumn('scope', 'text', (c) => c.notNull())
      .addColumn('code_challenge', 'text')
      // The token family the code's tokens will belong to: a replayed code revokes it (RFC 6749 §4.1.2).
      .addColumn('family_id', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addColumn('used_at', 'bigint')
      .execute();
    await db.schema.createIndex('oauth_codes_expires_at_idx').on('oauth_codes').column('expires_at').execute();
    await db.schema.createIndex('oauth_codes_user_client_idx').on('oauth_codes').columns(['user_id', 'client_id']).execute();
    await db.schema.createIndex('oauth_codes_client_id_idx').on('oauth_codes').column('client_id').execute();

    await db.schema
      .createTable('oauth_tokens')
      .addColumn('token_hash', 'text', (c) => c.primaryKey())
      .addColumn('kind', 'text', (c) => c.notNull()) // 'access' | 'refresh'
      .addColumn('family_id', 'text', (c) => c.notNull())
      .addColumn('client_id', 'text', (c) => c.notNull().references('oauth_clients.id').onDelete('cascade'))
      .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('scope', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      // Set when a refresh token is exchanged; presenting it again is reuse and revokes the family.
      .addColumn('rotated_at', 'bigint')
      .execute();
    await db.schema.createIndex('oauth_tokens_family_id_idx').on('oauth_tokens').column('family_id').execute();
    await db.schema.createIndex('oauth_tokens_user_client_idx').on('oauth_tokens').columns(['user_id', 'client_id']).execute();
    await db.schema.createIndex('oauth_tokens_client_id_idx').on('oauth_tokens').column('client_id').execute();
    await db.schema.createIndex('oauth_tokens_expires_at_idx').on('oauth_tokens').column('expires_at').execute();

    // Not a foreign key: the record outlives the client or grant it names.
    await db.schema
      .createTable('oauth_revocations')
      .addColumn('client_id', 'text', (c) => c.notNull())
      .addColumn('user_id', 'text')
      .addColumn('family_id', 'text')
      .addColumn('revoked_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('oauth_revocations_revoked_at_idx').on('oauth_revocations').column('revoked_at').execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('oauth_revocations').execute();
    await db.schema.dropTable('oauth_tokens').execute();
    await db.schema.dropTable('oauth_codes').execute();
    await db.schema.dropTable('oauth_grants').execute();
    await db.schema.dropTable('oauth_clients').execute();
  },
};

/**
 * Pending device ownership (issue 12): a device that reports the email of an existing account (or
 * of another address while it has an owner) does not change owner until that account accepts. One
 * claim per device, its latest report; a declined one is kept so the device does not mail again
 * while it reports the same email. The accept links mailed for claims are rows of
 * `email_confirmations` with `purpose` 'claim' (null: a registration link), so both kinds of mail
 * share one set of mail limits.
 */
const m0007DeviceClaims: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('device_claims')
      // Not a foreign key, like email_confirmations.device_id; listing joins devices, deleting sweeps.
      .addColumn('device_id', 'text', (c) => c.primaryKey())
      .addColumn('email', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('declined_at', 'bigint')
      .execute();
    await db.schema.createIndex('device_claims_email_idx').on('device_claims').column('email').execute();
    await db.schema.alterTable('email_confirmations').addColumn('purpose', 'text').execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('email_confirmations').dropColumn('purpose').execute();
    await db.schema.dropTable('device_claims').execute();
  },
};

/**
 * MQTT retained-message quotas (issue 12): who each retained message is charged to (the publishing
 * principal) and how many bytes, so per-owner usage survives a restart without reading every payload.
 */
const m0008MqttRetainedOwner: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('mqtt_retained').addColumn('owner', 'text').execute();
    await db.schema.alterTable('mqtt_retained').addColumn('bytes', 'bigint').execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('mqtt_retained').dropColumn('bytes').execute();
    await db.schema.alterTable('mqtt_retained').dropColumn('owner').execute();
  },
};

/**
 * State every node of one database shares (issue 13): `hub_keys` holds the token-signing key when the
 * store is PostgreSQL (fronts sign tokens, edges hand the public key to agents; on SQLite the key stays
 * a file under --data), and on PostgreSQL the sequence MQTT queue seqs come from, so nodes sharing
 * the database never hand out the same one (SQLite's single process counts them itself).
 */
const m0009ScaleOut: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('hub_keys')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
    if (db.getExecutor().adapter instanceof PostgresAdapter) {
      await sql`create sequence mqtt_queue_seq`.execute(db);
      await sql`select setval('mqtt_queue_seq', coalesce(max(seq), 0) + 1, false) from mqtt_queue`.execute(db);
    }
  },

  async down(db: Kysely<unknown>): Promise<void> {
    if (db.getExecutor().adapter instanceof PostgresAdapter) await sql`drop sequence mqtt_queue_seq`.execute(db);
    await db.schema.dropTable('hub_keys').execute();
  },
};

/**
 * The shared subscription a queued message was picked for (`$share/{group}/{filter}`, null for the
 * others), so a member that leaves after a restart still hands it to another member (docs/mqtt.md
 * "Shared subscriptions").
 */
const m0011MqttQueueShareGroup: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('mqtt_queue').addColumn('share_group', 'text').execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('mqtt_queue').dropColumn('share_group').execute();
  },
};

/** Every migration, by name. */
export const migrations: Readonly<Record<string, Migration>> = Object.freeze({
  '0001_initial': m0001Initial,
  '0002_mqtt': m0002Mqtt,
  '0003_accounts': m0003Accounts,
  '0004_factory': m0004Factory,
  '0005_revoked_tokens': m0005RevokedTokens,
  '0006_oauth': m0006OAuth,
  '0007_device_claims': m0007DeviceClaims,
  '0008_mqtt_retained_owner': m0008MqttRetainedOwner,
  '0009_scale_out': m0009ScaleOut,
  '0010_mqtt_retained_shared': m0010MqttRetainedShared,
  '0011_mqtt_queue_share_group': m0011MqttQueueShareGroup,
});

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve({ ...migrations }),
};

/**
 * On PostgreSQL, the schema the store's tables go in (the first of the search path). The Migrator
 * looks for its own tables in every schema unless told one, so a second hub database kept as another
 * schema of the same PostgreSQL database would find the first one's and skip creating its own.
 */
async function postgresSchema<DB>(db: Kysely<DB>): Promise<string | undefined> {
  if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return undefined;
  const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(db);
  return rows[0]?.schema;
}

/** Brings the schema up to date; throws (with the failing migration named) if a migration fails. */
export async function migrateToLatest<DB>(db: Kysely<DB>): Promise<void> {
  const { error, results } = await new Migrator({ db, provider: migrationProvider, migrationTableSchema: await postgresSchema(db) }).migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    throw new Error(failed ? `Migration ${failed} failed` : 'Migrations failed', { cause: error });
  }
}
