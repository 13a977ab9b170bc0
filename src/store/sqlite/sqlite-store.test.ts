import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from './sqlite-store.js';

const root = mkdtempSync(join(tmpdir(), 'cloudrest-store-'));
after(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
/** A path in a folder that does not exist yet, so open() must create it. */
const tempFile = (): string => join(root, `case-${++files}`, 'nested', 'hub.db');

// What SqliteStore promises beyond the Store contract (test/store-contract.ts).
describe('SqliteStore on a file', () => {
  it('keeps users, devices and tokens across close and reopen', async () => {
    const file = tempFile();
    const first = SqliteStore.open(file);
    await first.migrate();
    const user = await first.createUser({ id: 'u_1', email: 'Ada@Example.com', passwordHash: 'h' });
    // Its owner set by the trusted path: a device's own report would only claim an existing account.
    await first.createDevice({ id: 'd_1', name: 'Thermostat', email: 'ada@example.com', secretHash: 's' });
    await first.updateDeviceInfo('d_1', { email: 'ada@example.com', model: 'x' }, 1234);
    const token = { tokenHash: 't', userId: 'u_1', createdAt: 1, expiresAt: 2 };
    await first.createToken(token);
    await first.close();

    const second = SqliteStore.open(file);
    try {
      await second.migrate();
      assert.deepEqual(await second.getUserByEmail('ada@example.com'), user);
      const devices = await second.listDevicesByEmail('ADA@example.com');
      assert.deepEqual(devices.map((d) => [d.id, d.info, d.lastSeenAt]), [['d_1', { email: 'ada@example.com', model: 'x' }, 1234]]);
      assert.deepEqual(await second.getToken('t'), token);
    } finally {
      await second.close();
    }
  });

  it('uses write-ahead logging so readers do not block the hub', async () => {
    const file = tempFile();
    const store = SqliteStore.open(file);
    await store.migrate();
    await store.close();
    const raw = new Database(file, { readonly: true });
    try {
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    } finally {
      raw.close();
    }
  });
});
