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
import { Migrator } from 'kysely';
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

/** Every migration, by name. */
export const migrations: Readonly<Record<string, Migration>> = Object.freeze({
  '0001_initial': m0001Initial,
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
