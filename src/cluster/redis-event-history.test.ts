import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { privateRedis, testRedis } from '../../test/support/services.js';
import { openRedis } from './redis-connection.js';
import { RedisEventHistory } from './redis-event-history.js';

describe('RedisEventHistory', async () => {
  const server = await testRedis();
  const [ra, rb] = await Promise.all([openRedis(server.url), openRedis(server.url)]);
  after(async () => {
    ra.disconnect();
    rb.disconnect();
    await server.drop();
  });

  it('records an event that every node appends once, and every node gets the same id for it', async () => {
    const keyPrefix = `${server.keyPrefix}once:`;
    const [a, b] = await Promise.all([RedisEventHistory.open({ redis: ra, keyPrefix }), RedisEventHistory.open({ redis: rb, keyPrefix })]);
    const start = a.lastId;
    const m1 = randomBytes(12);
    const m2 = randomBytes(12);
    const [a1, b1] = await Promise.all([a.append('d1', 'notification', 'same', m1), b.append('d1', 'notification', 'same', m1)]);
    const [b2, a2] = await Promise.all([b.append('d1', 'notification', 'same', m2), a.append('d1', 'notification', 'same', m2)]);
    assert.equal(a1.id, b1.id);
    assert.equal(a2.id, b2.id);
    assert.ok(a2.id > a1.id, 'the same bytes published again are a new event');
    const r = await b.since(['d1'], start);
    assert.deepEqual(r.events.map((e) => e.id), [a1.id, a2.id]);
  });

  it('resumes on another node from the id a client got on the first', async () => {
    const keyPrefix = `${server.keyPrefix}resume:`;
    const [frontA, frontB] = await Promise.all([RedisEventHistory.open({ redis: ra, keyPrefix }), RedisEventHistory.open({ redis: rb, keyPrefix })]);
    const seen = await frontA.append('d1', 'status', '{"online":true}');
    await frontA.append('d1', 'notification', 'missed 1');
    await frontB.append('d2', 'notification', 'missed 2');
    const r = await frontB.since(['d1', 'd2'], seen.id);
    assert.deepEqual(r.events.map((e) => [e.deviceId, e.type, e.data]), [['d1', 'notification', 'missed 1'], ['d2', 'notification', 'missed 2']]);
    assert.equal(r.complete, true);
  });

  it('forgets a deleted device everywhere', async () => {
    const keyPrefix = `${server.keyPrefix}forget:`;
    const [a, b] = await Promise.all([RedisEventHistory.open({ redis: ra, keyPrefix }), RedisEventHistory.open({ redis: rb, keyPrefix })]);
    const start = a.lastId;
    await a.append('gone', 'notification', 'x');
    await b.forget('gone');
    assert.deepEqual((await a.since(['gone'], start)).events, []);
  });
});

it('RedisEventHistory: after Redis lost everything, new ids are above the old ones and old cursors are told of the gap', async () => {
  const server = await privateRedis();
  const redis = await openRedis(server.url);
  after(async () => {
    redis.disconnect();
    await server.stop();
  });
  const h = await RedisEventHistory.open({ redis, keyPrefix: 'cr:' });
  const old = await h.append('d1', 'notification', 'before');
  await redis.flushall();
  const r = await h.since(['d1'], old.id);
  assert.equal(r.complete, false);
  const next = await h.append('d1', 'notification', 'after');
  assert.ok(next.id > old.id);
  const again = await h.since(['d1'], old.id);
  assert.equal(again.complete, false, 'what came between the cursor and the new origin is gone');
  assert.deepEqual(again.events.map((e) => e.data), ['after']);
  assert.deepEqual(await h.since(['d1'], next.id), { events: [], complete: true });
});
