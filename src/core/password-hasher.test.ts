import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BusyError } from './fair-semaphore.js';
import { PasswordHasher } from './password-hasher.js';

describe('password hasher', () => {
  it('hashes and verifies like secrets.ts, one client address (IPv6: one /64) sharing one place in the queue', async () => {
    // One slot and a queue of 4: each address may hold one waiting hash.
    const h = new PasswordHasher({ maxConcurrent: 1, maxQueued: 4, maxWaitMs: 10_000 });
    const stored = await h.hash('right password', '192.0.2.1');
    const running = h.verify('right password', stored, '192.0.2.1');
    const queued = h.verify('wrong password', stored, '2001:db8:1:2::1');
    const sameSlash64 = await h.verify('right password', stored, '2001:db8:1:2::ffff').catch((e: unknown) => e);
    assert.ok(sameSlash64 instanceof BusyError, 'the /64 already has its one place');
    const otherSlash64 = h.verify('right password', stored, '2001:db8:1:3::1');
    assert.deepEqual(await Promise.all([running, queued, otherSlash64]), [true, false, true]);
    assert.equal(h.running + h.queued, 0);
  });
});
