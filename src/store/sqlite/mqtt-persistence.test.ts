import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Migrator } from 'kysely';
import { migrationProvider } from '../migrations/index.js';
import { SqliteMqttPersistence } from './mqtt-persistence.js';
import { SqliteStore } from './sqlite-store.js';

const root = mkdtempSync(join(tmpdir(), 'cloudrest-mqtt-'));
after(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
const tempFile = (): string => join(root, `case-${++files}`, 'hub.db');

// What SqliteMqttPersistence promises beyond the MqttPersistence contract (test/mqtt-persistence-contract.ts).
describe('SqliteMqttPersistence', () => {
  it("shares the hub store's database, and closing it leaves the store open", async () => {
    const store = SqliteStore.open(tempFile());
    try {
      await store.migrate();
      const p = await SqliteMqttPersistence.on(store.db);
      await store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'h' });
      await p.enqueue('c1', [{ topic: 't', payload: Buffer.from('x'), qos: 1, retain: false }]);
      await p.close();
      assert.equal((await store.getUserById('u_1'))?.email, 'ada@example.com');
      assert.equal(await (await SqliteMqttPersistence.on(store.db)).countQueued('c1'), 1);
    } finally {
      await store.close();
    }
  });

  it('a failed write rejects only its caller, and later operations still run', async (t) => {
    const p = await SqliteMqttPersistence.open(tempFile());
    t.after(() => p.close());
    const bad = { topic: 't', payload: {} as Buffer, qos: 1 as const, retain: false };
    const results = await Promise.allSettled([p.enqueue('c1', [bad]), p.addIncomingQos2('c1', 1)]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'fulfilled']);
    await p.enqueue('c1', [{ ...bad, payload: Buffer.from('ok') }]);
    assert.deepEqual((await p.queued('c1', 10)).map((m) => m.payload.toString()), ['ok']);
  });

  it('adds its tables to a hub database created before the broker existed', async () => {
    const file = tempFile();
    const old = SqliteStore.open(file);
    await new Migrator({ db: old.db, provider: migrationProvider }).migrateTo('0001_initial');
    await old.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'h' });
    await old.close();

    const p = await SqliteMqttPersistence.open(file);
    await p.setRetained({ topic: 'r', payload: Buffer.from('x'), qos: 0, retain: true });
    await p.close();
    const store = SqliteStore.open(file);
    try {
      await store.migrate();
      assert.equal((await store.getUserById('u_1'))?.email, 'ada@example.com');
    } finally {
      await store.close();
    }
  });
});
