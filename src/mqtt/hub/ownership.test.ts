import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import { DeviceOwnership } from './ownership.js';

describe('device ownership for the MQTT ACL (on a real SQLite store)', () => {
  let dir: string;
  let store: SqliteStore;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cloudrest-ownership-'));
    store = SqliteStore.open(join(dir, 'db.sqlite'));
    await store.migrate();
    await store.createDevice({ id: 'd1', name: 'one', email: 'ann@example.com', secretHash: 'x' });
    await store.createDevice({ id: 'd2', name: 'two', email: null, secretHash: 'x' });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('knows the owners at load, case-insensitively', async () => {
    const o = new DeviceOwnership(store);
    await o.load();
    assert.equal(o.owns('Ann@Example.com', 'd1'), true);
    assert.equal(o.owns('ann@example.com', 'd2'), false);
  });

  test('a device that reports a new owner when it connects moves to that owner', async () => {
    const o = new DeviceOwnership(store);
    await o.load();
    await store.updateDeviceInfo('d2', { email: 'bob@example.com' }, Date.now());
    assert.equal(o.owns('bob@example.com', 'd2'), false, 'not before it is re-read');
    await o.refreshDevice('d2');
    assert.equal(o.owns('bob@example.com', 'd2'), true);
    await store.updateDeviceInfo('d2', { email: 'ann@example.com' }, Date.now());
    await o.refreshDevice('d2');
    assert.equal(o.owns('bob@example.com', 'd2'), false);
    assert.equal(o.owns('ann@example.com', 'd2'), true);
  });

  test('re-reading an owner picks up devices registered since, and drops deleted ones', async () => {
    const o = new DeviceOwnership(store);
    await o.load();
    await store.createDevice({ id: 'd3', name: 'three', email: 'cy@example.com', secretHash: 'x' });
    await store.createDevice({ id: 'd4', name: 'four', email: 'cy@example.com', secretHash: 'x' });
    await o.refreshOwner('cy@example.com');
    assert.equal(o.owns('cy@example.com', 'd3'), true);
    await store.deleteDevice('d3');
    await o.refreshOwner('cy@example.com');
    assert.equal(o.owns('cy@example.com', 'd3'), false);
    assert.equal(o.owns('cy@example.com', 'd4'), true);
  });
});
