import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openStoreBackend } from '../../backends.js';
import { privatePostgres, testPostgres } from '../../../test/support/services.js';
import { openPostgresBackend } from './postgres-backend.js';

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// What the PostgreSQL StoreBackend promises beyond the Store and MqttPersistence contracts.
describe('PostgreSQL store backend', () => {
  it('nodes starting at once on one new database migrate it once and sign with one key', async (t) => {
    const db = await testPostgres();
    t.after(() => db.drop());
    const nodes = await Promise.all([1, 2, 3, 4].map(() => openStoreBackend({ data: '/nonexistent-not-used', store: db.url })));
    t.after(() => Promise.all(nodes.map((n) => n.close())));
    const signers = await Promise.all(nodes.map((n) => n.openTokenSigner('/nonexistent-not-used')));
    assert.equal(new Set(signers.map((s) => s.publicKey.kid)).size, 1);
    await nodes[0]!.store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'h' });
    assert.equal((await nodes[3]!.store.getUserByEmail('ada@example.com'))?.id, 'u_1');
    const later = await openPostgresBackend(db.url);
    t.after(() => later.close());
    assert.equal((await later.openTokenSigner('')).publicKey.kid, signers[0]!.publicKey.kid, 'the key is kept in the database');
  });

  it('a --store that is neither sqlite nor a PostgreSQL URL is refused, naming the flag', async () => {
    await assert.rejects(openStoreBackend({ data: '.', store: 'mysql://u:secret@h/db' }), (err: Error) => /--store/.test(err.message) && !err.message.includes('secret'));
  });

  it('survives a PostgreSQL restart: ping fails while it is down, and the same backend works again once it is back', async (t) => {
    const server = await privatePostgres();
    after(() => server.stop());
    const backend = await openPostgresBackend(server.url);
    t.after(() => backend.close());
    const persistence = await backend.openMqttPersistence();
    await backend.store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'h' });
    // Several idle connections, each of which the restart breaks.
    await Promise.all([1, 2, 3, 4, 5].map(() => backend.store.listUsers()));
    await server.stop();
    await assert.rejects(backend.ping());
    await server.start();
    await eventually('the store answers again', () => backend.ping().then(() => true, () => false));
    assert.equal((await backend.store.getUserByEmail('ada@example.com'))?.id, 'u_1');
    await backend.store.createUser({ id: 'u_2', email: 'bob@example.com', passwordHash: 'h' });
    await persistence.enqueue('c1', [{ topic: 't', payload: Buffer.from('x'), qos: 1, retain: false }]);
    assert.equal(await persistence.countQueued('c1'), 1);
  });
});
