/**
 * Copies a hub's SQLite database (and its token-signing key file) into PostgreSQL, for `cloudrest
 * migrate` (src/cli/migrate.ts): a hub that outgrew one process moves to the scaled store without
 * losing users, devices, tokens, OAuth state, factory keys or the MQTT broker's state.
 *
 * One PostgreSQL transaction per run, read from one SQLite read transaction (a consistent snapshot):
 * the target gets everything or nothing. Rows are streamed in chunks by rowid, never a whole table in
 * memory; values are copied as they are (queue seqs included, so queue order is kept).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kysely, PostgresDialect, sql, type Transaction } from 'kysely';
import { SIGNING_KEY_FILE } from '../core/auth/token-signer.js';
import { migrateToLatest, migrations } from './migrations/index.js';
import { openPostgresPool } from './postgres/postgres-store.js';
import { saveSigningKey } from './postgres/signing-key.js';
import { SqliteStore } from './sqlite/sqlite-store.js';

/**
 * Every table of the schema, parents before children (foreign keys). A migration that adds a table
 * adds it here; src/store/copy-store.test.ts fails until it does.
 */
export const COPIED_TABLES = [
  'users', 'devices', 'tokens', 'factory_keys', 'email_confirmations', 'revoked_tokens', 'device_claims',
  'oauth_clients', 'oauth_grants', 'oauth_codes', 'oauth_tokens', 'oauth_revocations',
  'mqtt_sessions', 'mqtt_queue', 'mqtt_incoming_qos2', 'mqtt_retained', 'hub_keys',
] as const;

/** Rows read and written per statement: bounded memory, and far below PostgreSQL's 65,535 parameters. */
const CHUNK_ROWS = 500;

type Row = Record<string, unknown>;
type AnyTables = Record<string, Row>;

/** A refusal the user can act on (a non-empty target, a source at another schema): no data was changed. */
export class CopyRefusedError extends Error {
  override readonly name = 'CopyRefusedError';
}

export interface CopyResult {
  /** Rows copied per table, verified by counting the target's. */
  rows: Record<(typeof COPIED_TABLES)[number], number>;
  /** Whether the signing key file was found and copied. */
  signingKey: boolean;
  /** Rows of the target deleted first (--force), per table with any. */
  replaced: Record<string, number>;
}

export interface CopyOptions {
  /** The hub's data folder (`--data`): the SQLite database and the signing key file. */
  sqliteDataDir: string;
  /** The database file in it. */
  sqliteFile: string;
  postgresUrl: string;
  /** Replace the rows of a target that has any, instead of refusing. */
  force: boolean;
  /** Called after each table is copied. */
  onTable?: (table: string, rows: number) => void;
}

export async function copySqliteToPostgres(options: CopyOptions): Promise<CopyResult> {
  if (!existsSync(options.sqliteFile)) throw new CopyRefusedError(`no hub database at ${options.sqliteFile} (--from sqlite:DIR names the hub's --data folder)`);
  const source = SqliteStore.open(options.sqliteFile);
  const target = new Kysely<AnyTables>({ dialect: new PostgresDialect({ pool: openPostgresPool(options.postgresUrl, { maxConnections: 1 }) }) });
  try {
    await checkSourceSchema(source.db as Kysely<AnyTables>, options.sqliteFile);
    await migrateToLatest(target);
    const keyFile = join(options.sqliteDataDir, SIGNING_KEY_FILE);
    const signingKeyPem = existsSync(keyFile) ? readFileSync(keyFile, 'utf8') : undefined;
    const src = source.db as Kysely<AnyTables>;
    return await src.transaction().execute((snapshot) =>
      target.transaction().execute((trx) => copyAll(snapshot, trx, signingKeyPem, options)),
    );
  } finally {
    await target.destroy();
    await source.close();
  }
}

/** The source must be at exactly this build's schema: its rows are copied column by column. */
async function checkSourceSchema(db: Kysely<AnyTables>, file: string): Promise<void> {
  const latest = Object.keys(migrations).sort();
  const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db).catch(() => ({ rows: [] as Array<{ name: string }> }));
  const applied = rows.map((r) => r.name);
  if (applied.join() === latest.join()) return;
  const unknown = applied.filter((n) => !latest.includes(n));
  if (unknown.length > 0) throw new CopyRefusedError(`${file} has a newer schema (${unknown.join(', ')}) than this cloudrest knows: run the cloudrest version that wrote it`);
  throw new CopyRefusedError(
    `${file} is at schema ${applied.at(-1) ?? '(none)'}, not the latest (${latest.at(-1)!}): start this version's hub on it once (cloudrest hub --data DIR migrates it), stop it, and run migrate again`,
  );
}

async function count(db: Kysely<AnyTables>, table: string): Promise<number> {
  const row = await db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

async function copyAll(source: Transaction<AnyTables>, target: Transaction<AnyTables>, signingKeyPem: string | undefined, options: CopyOptions): Promise<CopyResult> {
  const replaced: Record<string, number> = {};
  const present: string[] = [];
  for (const table of COPIED_TABLES) {
    const n = await count(target, table);
    if (n > 0) {
      replaced[table] = n;
      present.push(`${table}: ${n}`);
    }
  }
  if (present.length > 0) {
    if (!options.force) throw new CopyRefusedError(`the target database is not empty (${present.join(', ')}): nothing was copied; --force replaces its rows`);
    for (const table of [...COPIED_TABLES].reverse()) await target.deleteFrom(table).execute();
  }

  const rows = {} as CopyResult['rows'];
  for (const table of COPIED_TABLES) {
    const copied = await copyTable(source, target, table);
    const expected = await count(source, table);
    const landed = await count(target, table);
    // Inside the transaction: a mismatch rolls everything back.
    if (copied !== expected || landed !== expected) throw new Error(`${table}: ${expected} rows in the source, ${copied} copied, ${landed} in the target`);
    rows[table] = landed;
    options.onTable?.(table, landed);
  }
  if (signingKeyPem !== undefined) {
    await saveSigningKey(target as unknown as Kysely<unknown>, signingKeyPem, Date.now());
    rows.hub_keys = await count(target, 'hub_keys');
  }
  // Queue seqs were copied as they were; new ones must come after them (migration 0009's sequence).
  await sql`select setval('mqtt_queue_seq', greatest(coalesce(max(seq), 0) + 1, nextval('mqtt_queue_seq')), false) from mqtt_queue`.execute(target);
  return { rows, signingKey: signingKeyPem !== undefined, replaced };
}

/** Copies one table in rowid order, CHUNK_ROWS at a time; returns how many rows. */
async function copyTable(source: Transaction<AnyTables>, target: Transaction<AnyTables>, table: string): Promise<number> {
  let after = Number.MIN_SAFE_INTEGER;
  let total = 0;
  for (;;) {
    const { rows } = await sql<Row & { __rowid: number }>`select rowid as __rowid, * from ${sql.table(table)} where rowid > ${after} order by rowid limit ${CHUNK_ROWS}`.execute(source);
    if (rows.length === 0) return total;
    after = rows.at(-1)!.__rowid;
    await target.insertInto(table).values(rows.map(({ __rowid: _rowid, ...columns }) => columns)).execute();
    total += rows.length;
  }
}
