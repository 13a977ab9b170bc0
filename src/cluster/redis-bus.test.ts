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
