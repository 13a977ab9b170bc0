import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { test } from 'node:test';
import { MemoryResponseCache, type CacheRead, type ResponseCache } from './cache.js';
import { RelayCache, type CachePlan } from './relay-cache.js';

/** A memory cache that counts its lookups (the round trips a shared cache would make). */
function countingCache(): { cache: ResponseCache; lookups: () => number } {
  const inner = new MemoryResponseCache({ maxBytes: 1 << 20, maxEntryBytes: 1 << 16 });
  let lookups = 0;
  const cache: ResponseCache = {
    get: (d, t): CacheRead | Promise<CacheRead> => {
      lookups++;
      return inner.get(d, t);
    },
    set: (d, t, e, f) => inner.set(d, t, e, f),
    delete: (d, t) => inner.delete(d, t),
    invalidateUri: (d, t) => inner.invalidateUri(d, t),
    invalidateDevice: (d) => inner.invalidateDevice(d),
  };
  return { cache, lookups: () => lookups };
}

const NOT_STORABLE = { status: 200, headers: [['content-type', 'application/json'], ['cache-control', 'no-store']] as Array<[string, string]> };
const STORABLE = { status: 200, headers: [['content-type', 'application/json'], ['cache-control', 'max-age=60']] as Array<[string, string]> };
/** What the cache wrote to the client when it answered itself. */
const served: number[] = [];
const res = { writeHead: (status: number) => served.push(status), end: () => undefined } as unknown as ServerResponse;

/** One relayed GET through the cache: its plan, then the device's answer; returns the plan and X-Cache. */
async function get(relay: RelayCache, answer: typeof STORABLE, body = Buffer.from('{}')): Promise<{ plan: CachePlan; xCache: string | undefined }> {
  const plan = await relay.plan('d1', 'GET', '/state', []);
  if (relay.tryServe(plan, 'GET', res)) return { plan, xCache: 'HIT' };
  const flat: string[] = [];
  const sink = await relay.onResponse(plan, 'd1', 'GET', '/state', answer, res, flat);
  if (sink && sink !== 'served') {
    sink.chunk(body);
    sink.end();
  }
  const i = flat.indexOf('x-cache');
  return { plan, xCache: i >= 0 ? flat[i + 1] : undefined };
}

test('with a shared cache, a target that answered something not storable skips the cache lookup for a while, and is still a MISS', async () => {
  const { cache, lookups } = countingCache();
  let now = 1_000_000;
  const relay = new RelayCache(cache, { maxEntryBytes: 1 << 16, passMs: 5000 });
  const realNow = Date.now;
  Date.now = () => now;
  try {
    assert.equal((await get(relay, NOT_STORABLE)).xCache, 'MISS');
    assert.equal(lookups(), 1);
    for (let i = 0; i < 10; i++) {
      const r = await get(relay, NOT_STORABLE);
      assert.equal(r.plan.decision, 'pass');
      assert.equal(r.xCache, 'MISS');
    }
    assert.equal(lookups(), 1, 'no lookup while the target is known not to be storable');
    now += 5001;
    await get(relay, NOT_STORABLE);
    assert.equal(lookups(), 2, 'asked again once the pass ran out');
  } finally {
    Date.now = realNow;
  }
});

test('a passed target whose answer became storable is looked up, stored and then served from the cache', async () => {
  const { cache, lookups } = countingCache();
  const relay = new RelayCache(cache, { maxEntryBytes: 1 << 16, passMs: 60_000 });
  await get(relay, NOT_STORABLE);
  assert.equal((await get(relay, STORABLE)).plan.decision, 'pass');
  const next = await get(relay, STORABLE);
  assert.equal(next.plan.decision, 'miss');
  assert.equal((await get(relay, STORABLE)).xCache, 'HIT');
  assert.equal(served.at(-1), 200);
  assert.equal(lookups(), 3);
});

test('without passMs (the embedded cache) every GET asks the cache', async () => {
  const { cache, lookups } = countingCache();
  const relay = new RelayCache(cache, { maxEntryBytes: 1 << 16 });
  for (let i = 0; i < 5; i++) await get(relay, NOT_STORABLE);
  assert.equal(lookups(), 5);
});
