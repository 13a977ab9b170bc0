import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HubError } from '../errors.js';
import { privateRedis, testRedis } from '../../test/support/services.js';
import { openRedis } from './redis-connection.js';
import { RedisAttemptLimiter } from './redis-attempt-limiter.js';

describe('RedisAttemptLimiter', async () => {
  const server = await testRedis();
  const connections = await Promise.all([openRedis(server.url), openRedis(server.url), openRedis(server.url)]);
  after(async () => {
    for (const r of connections) r.disconnect();
    await server.drop();
  });
  const node = (i: number, name = 'login', maxFailures = 10) => new RedisAttemptLimiter({ redis: connections[i]!, keyPrefix: server.keyPrefix, name, maxFailures, windowMs: 60_000, maxKeys: 10 });

  it('counts guesses spread over three nodes against one limit', async () => {
    const nodes = [node(0), node(1), node(2)];
    const reserved = await Promise.all(Array.from({ length: 300 }, (_, i) => nodes[i % 3]!.reserve('ada')));
    const granted = reserved.filter((r) => r.attempt !== undefined);
    assert.equal(granted.length, 10);
    for (const r of granted) r.attempt!.failed();
    // Settlements travel on each node's own connection: until all have landed, the checks still count
    // as in flight. Either way every node refuses; once they have, for the rest of the window.
    for (const n of nodes) {
      const deadline = Date.now() + 5000;
      while (true) {
        const r = await n.reserve('ada');
        assert.equal(r.attempt, undefined, 'refused on every node');
        if (r.retryAfterMs > 59_000) break;
        assert.ok(Date.now() < deadline, 'the ten failures reached every node');
        await new Promise((done) => setTimeout(done, 10));
      }
    }
  });

  it('keeps limits of different names apart, for the same key', async () => {
    const login = node(0, 'password-address', 1);
    const factory = node(1, 'factory-address', 1);
    (await login.reserve('10.0.0.1')).attempt!.failed();
    assert.ok((await login.retryAfterMs('10.0.0.1')) > 0);
    assert.equal(await factory.retryAfterMs('10.0.0.1'), 0);
  });

  it('stops counting the checks of a node that died before settling them, after the reservation deadline', async () => {
    const dying = node(0, 'dying', 2);
    assert.ok((await dying.reserve('ada', 1000)).attempt);
    assert.ok((await dying.reserve('ada', 1000)).attempt);
    const other = node(1, 'dying', 2);
    assert.equal(await other.retryAfterMs('ada', 2000), 1000, 'in flight: come back in a second');
    assert.equal(await other.retryAfterMs('ada', 1000 + 120_001), 0, 'the unsettled reservations ended');
  });
});

it('RedisAttemptLimiter: refuses to reserve with CR_ERR_BACKEND_UNAVAILABLE while Redis is down', async () => {
  const server = await privateRedis();
  const redis = await openRedis(server.url);
  after(async () => {
    redis.disconnect();
    await server.stop();
  });
  const limiter = new RedisAttemptLimiter({ redis, keyPrefix: 'cr:', name: 'login', maxFailures: 3, windowMs: 60_000, maxKeys: 10 });
  await server.stop();
  await assert.rejects(limiter.reserve('ada'), (err: unknown) => err instanceof HubError && err.code === 'CR_ERR_BACKEND_UNAVAILABLE' && err.status === 503);
});
