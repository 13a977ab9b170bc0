/**
 * Token revocation between nodes (core/token-revocation.ts) travels on the Bus: here two
 * Authenticators, as two hub nodes, share one store and talk over RedisBus, each on its own connection.
 */
import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { Authenticator } from '../core/auth/authenticator.js';
import { hashPassword, sha256Hex } from '../core/secrets.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { testRedis } from '../../test/support/services.js';
import { RedisBus } from './redis-bus.js';
import { openRedis } from './redis-connection.js';

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

it('a logout on one node ends the token on another at once, though that node had it cached', async () => {
  const server = await testRedis();
  const store = SqliteStore.open(':memory:');
  await store.migrate();
  await store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: await hashPassword('a password') });
  const [ra, rb] = await Promise.all([openRedis(server.url), openRedis(server.url)]);
  const [busA, busB] = await Promise.all([RedisBus.open({ redis: ra, keyPrefix: server.keyPrefix, onError: () => undefined }), RedisBus.open({ redis: rb, keyPrefix: server.keyPrefix, onError: () => undefined })]);
  // A minute of session cache: only the revocation event can take the token out of B's cache in time.
  const ttl = { tokenTtlMs: 3_600_000, rememberTokenTtlMs: 7_200_000, cacheTtlMs: 60_000 };
  const nodeA = new Authenticator(store, ttl, busA);
  const nodeB = new Authenticator(store, ttl, busB);
  after(async () => {
    nodeA.close();
    nodeB.close();
    await Promise.all([busA.close(), busB.close()]);
    ra.disconnect();
    rb.disconnect();
    await store.close();
    await server.drop();
  });
  const ended: string[] = [];
  nodeB.onRevoked((e) => {
    if ('tokenHashes' in e) ended.push(...e.tokenHashes);
  });

  const { token } = (await nodeA.login('ada@example.com', 'a password', false, '127.0.0.1'))!;
  assert.ok(await nodeB.session(token), 'node B knows the token');
  const cached = nodeB.session(token);
  assert.ok(cached !== undefined && !(cached instanceof Promise), 'and answers from its cache');
  // The bus subscription may not be live in Redis yet: revoke only once a probe has crossed.
  await until('the bus between the nodes', async () => {
    let crossed = false;
    const off = busB.subscribe('probe', () => (crossed = true));
    busA.publish('probe', Buffer.alloc(0));
    await new Promise((r) => setTimeout(r, 20));
    off();
    return crossed;
  });

  await nodeA.logout(token);
  await until('node B refuses the token', async () => (await nodeB.session(token)) === undefined);
  assert.deepEqual(ended, [sha256Hex(token)], "node B ended the token's streams");
});
