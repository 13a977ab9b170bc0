import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createEntry } from '../relay/cache-policy.js';
import { privateRedis, testRedis } from '../../test/support/services.js';
import { decodeCachedResponse, encodeCachedResponse } from './cached-response-codec.js';
import { openRedis } from './redis-connection.js';
import { RedisResponseCache } from './redis-response-cache.js';

const now = Date.now();
const entry = createEntry({
  requestHeaders: [['accept-language', 'fr']],
  status: 200,
  headers: [['cache-control', 'max-age=60'], ['etag', '"v1"'], ['vary', 'accept-language'], ['x-caf\u00e9', '\u00e9t\u00e9']],
  body: Buffer.from([0, 1, 2, 255]),
  requestTime: now,
  responseTime: now + 5,
})!;

describe('RedisResponseCache', async () => {
  const server = await testRedis();
  const [ra, rb] = await Promise.all([openRedis(server.url), openRedis(server.url)]);
  after(async () => {
    ra.disconnect();
    rb.disconnect();
    await server.drop();
  });
  const frontA = new RedisResponseCache({ redis: ra, keyPrefix: server.keyPrefix, maxEntryBytes: 1 << 16 });
  const frontB = new RedisResponseCache({ redis: rb, keyPrefix: server.keyPrefix, maxEntryBytes: 1 << 16 });

  it('stores an entry as bytes that read back as the same response', () => {
    assert.deepEqual(decodeCachedResponse(encodeCachedResponse(entry)), entry);
    const bare = { ...entry, etag: null, lastModified: null, vary: [['x', null]] as Array<[string, string | null]>, body: Buffer.alloc(0) };
    assert.deepEqual(decodeCachedResponse(encodeCachedResponse(bare)), bare);
  });

  it('answers every front from one copy, and a write through one front drops it for all', async () => {
    assert.equal(await frontA.set('d1', '/state', entry, (await frontA.get('d1', '/state')).fillToken), true);
    assert.deepEqual((await frontB.get('d1', '/state')).entry, entry);
    await frontB.invalidateUri('d1', '/state?x=1');
    assert.equal((await frontA.get('d1', '/state')).entry, undefined);
    assert.equal(await frontA.set('d1', '/state', entry, (await frontA.get('d1', '/state')).fillToken), true);
    await frontB.invalidateDevice('d1');
    assert.equal((await frontA.get('d1', '/state')).entry, undefined);
  });

  it('refuses a fill whose read came before a write through another front', async () => {
    const { fillToken } = await frontA.get('d2', '/a');
    await frontB.invalidateUri('d2', '/b');
    assert.equal(await frontA.set('d2', '/a', entry, fillToken), false);
  });

  it('gives each entry a TTL, and the device state lives at least as long', async () => {
    await frontA.set('d3', '/t', entry, (await frontA.get('d3', '/t')).fillToken);
    const entryTtl = await ra.pttl(`${server.keyPrefix}cache:e:2:d3/t`);
    const stateTtl = await ra.pttl(`${server.keyPrefix}cache:v:d3`);
    // max-age=60 plus the time kept for revalidation (it has an etag).
    assert.ok(entryTtl > 60_000 && entryTtl <= 60_000 + 10 * 60_000, String(entryTtl));
    assert.ok(stateTtl >= entryTtl - 50, `${stateTtl} < ${entryTtl}`);
  });

  it("drops a device's entries when its state is lost (evicted), rather than risk a missed invalidation", async () => {
    await frontA.set('d4', '/t', entry, (await frontA.get('d4', '/t')).fillToken);
    await ra.del(`${server.keyPrefix}cache:v:d4`);
    assert.equal((await frontB.get('d4', '/t')).entry, undefined);
    assert.equal(await frontB.set('d4', '/t', entry, (await frontB.get('d4', '/t')).fillToken), true);
    assert.deepEqual((await frontA.get('d4', '/t')).entry, entry);
  });

  it('keeps the state of a device small: past 1000 written paths it starts over', async () => {
    for (let i = 0; i < 1100; i++) await frontA.invalidateUri('d5', `/p${i}`);
    assert.ok((await ra.hlen(`${server.keyPrefix}cache:v:d5`)) <= 1001);
  });
});

it('RedisResponseCache: while Redis is down, reads miss and fills are refused, without errors', async () => {
  const server = await privateRedis();
  const redis = await openRedis(server.url);
  after(async () => {
    redis.disconnect();
    await server.stop();
  });
  const cache = new RedisResponseCache({ redis, keyPrefix: 'cr:', maxEntryBytes: 1 << 16 });
  await server.stop();
  const read = await cache.get('d1', '/a');
  assert.equal(read.entry, undefined);
  assert.equal(await cache.set('d1', '/a', entry, read.fillToken), false);
  await cache.delete('d1', '/a');
});
