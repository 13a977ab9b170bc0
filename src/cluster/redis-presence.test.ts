import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { privateRedis, type RedisServer } from '../../test/support/services.js';
import { openRedis } from './redis-connection.js';
import { RedisPresence } from './redis-presence.js';

const TTL_MS = 1500;

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!(await check().catch(() => false))) {
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

/** Two nodes on a private Redis: `a` holds devices, `b` looks them up. */
async function twoNodes(): Promise<{ server: RedisServer; a: RedisPresence; b: RedisPresence; admin: Redis; ra: Redis }> {
  const server = await privateRedis();
  const [ra, rb, admin] = await Promise.all([openRedis(server.url), openRedis(server.url), openRedis(server.url)]);
  const a = new RedisPresence({ redis: ra, keyPrefix: 'cr:', nodeId: 'n_a', nodeTtlMs: TTL_MS });
  const b = new RedisPresence({ redis: rb, keyPrefix: 'cr:', nodeId: 'n_b', nodeTtlMs: TTL_MS });
  await Promise.all([a.start(), b.start()]);
  after(async () => {
    await Promise.all([a.close(), b.close()]);
    for (const r of [ra, rb, admin]) r.disconnect();
    await server.stop();
  });
  return { server, a, b, admin, ra };
}

const online = async (p: RedisPresence, ids: string[]) => (await p.getMany(ids)).every((e) => e?.nodeId === 'n_a');

it('RedisPresence: after FLUSHALL every node writes back the devices it holds within one heartbeat period', async () => {
  const { a, b, admin } = await twoNodes();
  const ids = Array.from({ length: 50 }, (_, i) => `d_${i}`);
  for (const id of ids) await a.set(id, 1000);
  await a.delete('d_0');
  assert.equal(await online(b, ids.slice(1)), true);

  await admin.flushall();
  assert.deepEqual(await b.getMany(['d_1', 'd_2']), [undefined, undefined]);
  // One heartbeat period (TTL / 3) plus the liveness cache and scheduling slack.
  await until('the devices back online', () => online(b, ids.slice(1)), TTL_MS);
  assert.equal(await b.get('d_0'), undefined, 'a device let go before the flush stays offline');
  assert.deepEqual(await b.get('d_7'), { nodeId: 'n_a', since: 1000 });
});

it('RedisPresence: after Redis restarts empty, the nodes write back what they hold and see each other again', async () => {
  const { server, a, b } = await twoNodes();
  await a.setNodeInfo({ internalUrl: 'https://10.0.0.1:7444' });
  await a.set('d_1', 1000);
  await b.set('d_2', 2000);
  await server.restart();
  await until('both devices back online', async () => {
    const [d1, d2] = await b.getMany(['d_1', 'd_2']);
    return d1?.nodeId === 'n_a' && d2?.nodeId === 'n_b';
  }, 10_000);
  assert.equal(await b.nodeAlive('n_a'), true);
  assert.deepEqual(await b.nodeInfo('n_a'), { internalUrl: 'https://10.0.0.1:7444' });
});

it('RedisPresence: a write-back does not take a device from the node that took it over meanwhile', async () => {
  const { a, b, admin } = await twoNodes();
  await a.set('d_1', 1000);
  await admin.flushall();
  await b.set('d_1', 2000); // reconnected to b before a wrote its entries back
  await until('a back alive', () => b.nodeAlive('n_a'), TTL_MS * 2);
  assert.deepEqual(await a.get('d_1'), { nodeId: 'n_b', since: 2000 });
});

it("RedisPresence: a node is alive and advertises its internal URL while its heartbeat runs, and not after it closed", async () => {
  const { a, b } = await twoNodes();
  await a.setNodeInfo({ internalUrl: 'https://a.internal:7444' });
  assert.equal(await b.nodeAlive('n_a'), true);
  assert.deepEqual(await b.nodeInfo('n_a'), { internalUrl: 'https://a.internal:7444' });
  assert.equal(await b.nodeAlive('n_nobody'), false);
  assert.equal(await b.nodeInfo('n_nobody'), undefined);
  await a.set('d_1', 1);
  await a.close();
  await until('a dead once closed', async () => !(await b.nodeAlive('n_a')), 2000);
  assert.equal(await b.get('d_1'), undefined);
});

it('RedisPresence: a node whose heartbeat key expired (a stall) has its devices back after its next heartbeat', async () => {
  const { a, b, admin } = await twoNodes();
  await a.set('d_1', 1000);
  await admin.del('cr:node:n_a'); // as if a's heartbeats had stalled past the TTL
  assert.equal(await b.get('d_1'), undefined);
  // The others drop a dead node's entries as they come across them; a writes its own back.
  await until('d_1 back online', async () => (await b.get('d_1'))?.nodeId === 'n_a', TTL_MS);
});

it('RedisPresence: a device let go while Redis could not be told is offline once Redis answers again', async () => {
  const { a, b, ra } = await twoNodes();
  await a.set('d_1', 1000);
  await a.set('d_2', 1000);
  // a's connection drops (a network blip); it reconnects by itself, Redis kept everything.
  ra.disconnect(true);
  await assert.rejects(a.delete('d_1'), /Redis is unavailable/);
  await until('d_1 offline, d_2 still online', async () => {
    const [d1, d2] = await b.getMany(['d_1', 'd_2']);
    return d1 === undefined && d2?.nodeId === 'n_a';
  }, 10_000);
});
