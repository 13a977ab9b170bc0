/**
 * What every ResponseCache (the relay's store of GET answers per device + target) must do, run by
 * test/contracts.test.ts against each implementation: MemoryResponseCache now, the Redis one shared by
 * all nodes with the scale-out. `make` returns a fresh, empty cache with room for these entries.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ResponseCache } from '../src/relay/cache.js';
import { createEntry } from '../src/relay/cache-policy.js';
import type { HeaderList } from '../src/relay/protocol/heads.js';
import type { ContractSuite } from './support/contracts.js';

const T0 = Date.UTC(2024, 0, 15, 12, 0, 0);

/** A header list from `name: value` lines. */
function h(...lines: string[]): HeaderList {
  return lines.map((l) => {
    const i = l.indexOf(':');
    return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
  });
}

export const responseCacheContract: ContractSuite<ResponseCache> = (implementation) => {
  const entry = createEntry({ requestHeaders: [], status: 200, headers: h('cache-control: max-age=60'), body: Buffer.from('state'), requestTime: T0, responseTime: T0 + 10 });
  assert.ok(entry);

  test('a stored response is found again for the same device and target only', async () => {
    const cache = await implementation.make();
    const { entry: none, fillToken } = await cache.get('d1', '/api/zones');
    assert.equal(none, undefined);
    assert.equal(await cache.set('d1', '/api/zones', entry, fillToken), true);
    assert.equal((await cache.get('d1', '/api/zones')).entry?.body.toString(), 'state');
    assert.equal((await cache.get('d2', '/api/zones')).entry, undefined);
    assert.equal((await cache.get('d1', '/api/zones?x=1')).entry, undefined);
  });

  test('a PUT to a URI drops its cached GET, with any query string, and nothing else', async () => {
    const cache = await implementation.make();
    for (const target of ['/api/zones/1', '/api/zones/1?x=y', '/api/zones/10', '/api/zones']) {
      await cache.set('d1', target, entry, (await cache.get('d1', target)).fillToken);
    }
    await cache.set('d2', '/api/zones/1', entry, (await cache.get('d2', '/api/zones/1')).fillToken);
    await cache.invalidateUri('d1', '/api/zones/1?whatever');
    assert.equal((await cache.get('d1', '/api/zones/1')).entry, undefined);
    assert.equal((await cache.get('d1', '/api/zones/1?x=y')).entry, undefined);
    assert.ok((await cache.get('d1', '/api/zones/10')).entry);
    assert.ok((await cache.get('d1', '/api/zones')).entry);
    assert.ok((await cache.get('d2', '/api/zones/1')).entry);
  });

  test('a replaced entry is still dropped by a later write', async () => {
    const cache = await implementation.make();
    for (let i = 0; i < 2; i++) await cache.set('d1', '/a?v', entry, (await cache.get('d1', '/a?v')).fillToken);
    await cache.invalidateUri('d1', '/a');
    assert.equal((await cache.get('d1', '/a?v')).entry, undefined);
  });

  test('a reconnect drops every entry of that device only', async () => {
    const cache = await implementation.make();
    for (const [d, t] of [['d1', '/a'], ['d1', '/b?q=1'], ['d2', '/a']] as const) await cache.set(d, t, entry, (await cache.get(d, t)).fillToken);
    await cache.invalidateDevice('d1');
    assert.equal((await cache.get('d1', '/a')).entry, undefined);
    assert.equal((await cache.get('d1', '/b?q=1')).entry, undefined);
    assert.ok((await cache.get('d2', '/a')).entry);
  });

  test('delete drops one target and keeps its query siblings', async () => {
    const cache = await implementation.make();
    for (const t of ['/a', '/a?x=1']) await cache.set('d1', t, entry, (await cache.get('d1', t)).fillToken);
    await cache.delete('d1', '/a');
    assert.equal((await cache.get('d1', '/a')).entry, undefined);
    assert.ok((await cache.get('d1', '/a?x=1')).entry);
  });

  test('a GET that was in flight during a write to the device is not cached', async () => {
    const cache = await implementation.make();
    const { fillToken } = await cache.get('d1', '/api/zones');
    await cache.invalidateUri('d1', '/api/zones/1');
    assert.equal(await cache.set('d1', '/api/zones', entry, fillToken), false);
    assert.equal((await cache.get('d1', '/api/zones')).entry, undefined);
    const again = await cache.get('d1', '/api/zones');
    assert.equal(await cache.set('d1', '/api/zones', entry, again.fillToken), true);
  });

  test('a GET that was in flight across a reconnect is not cached; other devices fill normally', async () => {
    const cache = await implementation.make();
    const t1 = (await cache.get('d1', '/a')).fillToken;
    const t2 = (await cache.get('d2', '/a')).fillToken;
    await cache.invalidateDevice('d1');
    assert.equal(await cache.set('d1', '/a', entry, t1), false);
    assert.equal(await cache.set('d2', '/a', entry, t2), true);
  });

  test('percent-encoding variants of a target share one entry', async () => {
    const cache = await implementation.make();
    await cache.set('d1', '/api/a%2dz', entry, (await cache.get('d1', '/api/a%2dz')).fillToken);
    assert.ok((await cache.get('d1', '/api/a-z')).entry);
    await cache.invalidateUri('d1', '/api/a%2Dz');
    assert.equal((await cache.get('d1', '/api/a-z')).entry, undefined);
  });
};
