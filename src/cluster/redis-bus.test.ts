import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { privateRedis } from '../../test/support/services.js';
import { RedisBus } from './redis-bus.js';
import { openRedis } from './redis-connection.js';

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('RedisBus: subscriptions work again after Redis restarts, without subscribing again', async () => {
  const server = await privateRedis();
  const redis = await openRedis(server.url);
  const bus = await RedisBus.open({ redis, keyPrefix: 'cloudrest:', onError: () => undefined });
  after(async () => {
    await bus.close();
    redis.disconnect();
    await server.stop();
  });
  const exact: string[] = [];
  const wild: string[] = [];
  bus.subscribe('devices/d1/changed', (_t, p) => exact.push(p.toString()));
  bus.subscribe('devices/+/changed', (_t, p) => wild.push(p.toString()));
  await until('first message', () => {
    bus.publish('devices/d1/changed', Buffer.from('before'));
    return exact.includes('before') && wild.includes('before');
  });

  await server.restart();
  await until('a message after the restart', () => {
    bus.publish('devices/d1/changed', Buffer.from('after'));
    return exact.includes('after') && wild.includes('after');
  });
});

it('RedisBus: a node receives only channels its filters may match, and each subscription once per message', async () => {
  const server = await privateRedis();
  const redis = await openRedis(server.url);
  const bus = await RedisBus.open({ redis, keyPrefix: 'p:', onError: () => undefined });
  const other = await openRedis(server.url);
  after(async () => {
    await bus.close();
    redis.disconnect();
    other.disconnect();
    await server.stop();
  });
  const got: string[] = [];
  bus.subscribe('a/b', (t) => got.push(`exact ${t}`));
  bus.subscribe('a/+', (t) => got.push(`plus ${t}`));
  bus.subscribe('a/#', (t) => got.push(`hash ${t}`));
  await until('subscriptions in Redis', async () => Number(await other.call('PUBSUB', 'NUMPAT')) === 2 && (await other.call('PUBSUB', 'CHANNELS', 'p:*') as string[]).length === 1);
  assert.deepEqual((await other.call('PUBSUB', 'CHANNELS', 'p:*')) as string[], ['p:a/b']);
  bus.publish('a/b', Buffer.alloc(0));
  await until('the message', () => got.length >= 3);
  // Another message after it proves no duplicate of the first is still on its way.
  bus.publish('a', Buffer.alloc(0));
  await until('the second message', () => got.includes('hash a'));
  assert.deepEqual(got.sort(), ['exact a/b', 'hash a', 'hash a/b', 'plus a/b']);
});

it('RedisBus: every node receiving a publish sees the same message id, and each publish has its own', async () => {
  const server = await privateRedis();
  const [r1, r2] = await Promise.all([openRedis(server.url), openRedis(server.url)]);
  const [a, b] = await Promise.all([RedisBus.open({ redis: r1, keyPrefix: 'p:', onError: () => undefined }), RedisBus.open({ redis: r2, keyPrefix: 'p:', onError: () => undefined })]);
  after(async () => {
    await Promise.all([a.close(), b.close()]);
    r1.disconnect();
    r2.disconnect();
    await server.stop();
  });
  const seenA: string[] = [];
  const seenB: string[] = [];
  a.subscribe('devices/+/events', (_t, p, id) => seenA.push(`${id!.toString('hex')} ${p.toString()}`));
  b.subscribe('devices/#', (_t, p, id) => seenB.push(`${id!.toString('hex')} ${p.toString()}`));
  await until('both subscribed', () => {
    a.publish('devices/d1/events', Buffer.from('probe'));
    return seenA.length > 0 && seenB.length > 0;
  });
  a.publish('devices/d1/events', Buffer.from('same'));
  a.publish('devices/d1/events', Buffer.from('same'));
  const same = (seen: string[]) => seen.filter((s) => s.endsWith(' same'));
  await until('both messages on both nodes', () => same(seenA).length === 2 && same(seenB).length === 2);
  assert.deepEqual(same(seenA), same(seenB));
  assert.notEqual(same(seenA)[0], same(seenA)[1], 'two publishes of the same bytes have different ids');
});

it('RedisBus: an awaited publish says how many nodes received it', async () => {
  const server = await privateRedis();
  const [ra, rb, rc] = await Promise.all([openRedis(server.url), openRedis(server.url), openRedis(server.url)]);
  const [a, b, c] = await Promise.all([ra, rb, rc].map((redis) => RedisBus.open({ redis, keyPrefix: 'cloudrest:', onError: () => undefined })));
  after(async () => {
    await Promise.all([a!.close(), b!.close(), c!.close()]);
    for (const r of [ra, rb, rc]) r.disconnect();
    await server.stop();
  });
  const got: string[] = [];
  a!.subscribe('cluster/device-updated', (_t, p) => got.push(`a ${p.toString()}`));
  b!.subscribe('cluster/device-updated', (_t, p) => got.push(`b ${p.toString()}`));
  // Subscriptions reach Redis on their own connection: count once both are live.
  await until('both subscribed', async () => (await c!.publishCounted('cluster/device-updated', Buffer.from('probe'))) === 2);
  assert.equal(await c!.publishCounted('cluster/device-updated', Buffer.from('d_1')), 2);
  // Probes may still be arriving: only the id counts.
  const ids = () => got.filter((g) => g.endsWith(' d_1')).sort();
  await until('both received it', () => ids().length === 2);
  assert.deepEqual(ids(), ['a d_1', 'b d_1']);
  await server.stop();
  await assert.rejects(c!.publishCounted('cluster/device-updated', Buffer.from('d_2')), 'Redis away: the publisher is told');
});
