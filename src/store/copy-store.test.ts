import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Migrator, sql } from 'kysely';
import { testPostgres } from '../../test/support/services.js';
import { COPIED_TABLES, copySqliteToPostgres, CopyRefusedError } from './copy-store.js';
import { migrationProvider } from './migrations/index.js';
import { openPostgresBackend } from './postgres/postgres-backend.js';
import { openSqliteBackend } from './sqlite/sqlite-backend.js';
import { SqliteStore } from './sqlite/sqlite-store.js';

const root = mkdtempSync(join(tmpdir(), 'cloudrest-copy-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const dataDir = (): string => join(root, `data-${++dirs}`);

const message = (i: number) => ({ topic: `t/${i}`, payload: Buffer.from([i & 0xff, 0, 0xff]), qos: 1 as const, retain: false });

describe('copying a SQLite hub database into PostgreSQL', () => {
  it('knows every table a migrated database has', async () => {
    const store = SqliteStore.open(':memory:');
    await store.migrate();
    const { rows } = await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%' and name not like 'kysely_%'`.execute(store.db);
    await store.close();
    assert.deepEqual(rows.map((r) => r.name).sort(), [...COPIED_TABLES].sort());
  });

  it('copies every row, over many chunks, with queue order, and later seqs come after the copied ones', async (t) => {
    const dir = dataDir();
    const src = await openSqliteBackend(join(dir, 'cloudrest.db'));
    const signer = await src.openTokenSigner(dir);
    await src.store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'h' });
    const mqtt = await src.openMqttPersistence();
    const seqs = await mqtt.enqueue('c1', Array.from({ length: 1234 }, (_, i) => message(i)));
    await src.close();
    const db = await testPostgres();
    t.after(() => db.drop());
    const tables: string[] = [];
    const result = await copySqliteToPostgres({ sqliteDataDir: dir, sqliteFile: join(dir, 'cloudrest.db'), postgresUrl: db.url, force: false, onTable: (table) => tables.push(table) });
    assert.equal(result.rows.users, 1);
    assert.equal(result.rows.mqtt_queue, 1234);
    assert.equal(result.rows.hub_keys, 1);
    assert.equal(result.signingKey, true);
    assert.deepEqual(tables, [...COPIED_TABLES]);
    const pg = await openPostgresBackend(db.url);
    t.after(() => pg.close());
    assert.equal((await pg.openTokenSigner('')).publicKey.kid, signer.publicKey.kid, 'tokens the SQLite hub signed verify with the same key');
    const persistence = await pg.openMqttPersistence();
    const copied = await persistence.queued('c1', 5000);
    assert.deepEqual(copied.map((m) => m.seq), seqs);
    assert.deepEqual(copied[1233]!.payload, message(1233).payload);
    const [next] = await persistence.enqueue('c1', [message(0)]);
    assert.ok(next! > seqs.at(-1)!);
  });

  it('refuses a target with rows unless forced, which replaces them', async (t) => {
    const dir = dataDir();
    const src = await openSqliteBackend(join(dir, 'cloudrest.db'));
    await src.store.createUser({ id: 'u_src', email: 'src@example.com', passwordHash: 'h' });
    await src.close();
    const db = await testPostgres();
    t.after(() => db.drop());
    const target = await openPostgresBackend(db.url);
    await target.store.createUser({ id: 'u_old', email: 'old@example.com', passwordHash: 'h' });
    const options = { sqliteDataDir: dir, sqliteFile: join(dir, 'cloudrest.db'), postgresUrl: db.url, force: false };
    await assert.rejects(copySqliteToPostgres(options), (err: Error) => err instanceof CopyRefusedError && /not empty \(users: 1\)/.test(err.message));
    assert.deepEqual((await target.store.listUsers()).map((u) => u.id), ['u_old']);
    const forced = await copySqliteToPostgres({ ...options, force: true });
    assert.deepEqual(forced.replaced, { users: 1 });
    assert.deepEqual((await target.store.listUsers()).map((u) => u.id), ['u_src']);
    await target.close();
  });

  it('refuses a source that is missing or not at the latest schema, changing nothing', async (t) => {
    const db = await testPostgres();
    t.after(() => db.drop());
    const missing = dataDir();
    await assert.rejects(copySqliteToPostgres({ sqliteDataDir: missing, sqliteFile: join(missing, 'cloudrest.db'), postgresUrl: db.url, force: false }), /no hub database/);
    const dir = dataDir();
    const old = SqliteStore.open(join(dir, 'cloudrest.db'));
    await new Migrator({ db: old.db, provider: migrationProvider }).migrateTo('0007_device_claims');
    await old.close();
    await assert.rejects(copySqliteToPostgres({ sqliteDataDir: dir, sqliteFile: join(dir, 'cloudrest.db'), postgresUrl: db.url, force: false }), (err: Error) => err instanceof CopyRefusedError && /0007_device_claims, not the latest/.test(err.message));
  });
});
