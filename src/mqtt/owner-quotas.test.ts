import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OwnerQuotas, queuedSize } from './owner-quotas.js';

describe('OwnerQuotas', () => {
  it('admits new sessions up to the limit per owner, and always one the owner already has', () => {
    const q = new OwnerQuotas(2, 0);
    for (const id of ['a', 'b']) {
      assert.ok(q.admits(id, 'device:1'));
      q.hold(id, 'device:1');
    }
    assert.equal(q.admits('c', 'device:1'), false);
    assert.ok(q.admits('a', 'device:1'), 'its own session');
    assert.ok(q.admits('c', 'user:2'), 'another owner');
    q.hold('a', 'device:1');
    assert.equal(q.sessionsOf('device:1'), 2, 'holding the same slot twice counts once');
  });

  it('a released slot is free again; releasing an unknown one changes nothing', () => {
    const q = new OwnerQuotas(1, 0);
    q.hold('a', 'o');
    q.release('nobody');
    assert.equal(q.admits('b', 'o'), false);
    q.release('a');
    q.release('a');
    assert.equal(q.sessionsOf('o'), 0);
    assert.ok(q.admits('b', 'o'));
  });

  it("a client id taken by another owner moves to it, out of the first owner's count", () => {
    const q = new OwnerQuotas(1, 0);
    q.hold('shared', 'o1');
    assert.equal(q.admits('shared', 'o2'), true);
    q.hold('shared', 'o2');
    assert.deepEqual([q.sessionsOf('o1'), q.sessionsOf('o2')], [0, 1]);
  });

  it('0 means no limit, for sessions and for bytes', () => {
    const q = new OwnerQuotas(0, 0);
    for (let i = 0; i < 1000; i++) q.hold(`c${i}`, 'o');
    assert.ok(q.admits('one more', 'o'));
    const a = q.account('o');
    a.queuedBytes = Number.MAX_SAFE_INTEGER - 1;
    assert.ok(q.hasRoom(a, 1));
  });

  it('has room for bytes up to the limit exactly, per owner', () => {
    const q = new OwnerQuotas(0, 100);
    const a = q.account('o');
    assert.equal(q.account('o'), a, 'one account per owner');
    a.queuedBytes = 60;
    assert.ok(q.hasRoom(a, 40));
    assert.equal(q.hasRoom(a, 41), false);
    assert.ok(q.hasRoom(q.account('other'), 100));
  });

  it('a message counts its payload and topic', () => {
    assert.equal(queuedSize({ topic: 'a/b', payload: Buffer.alloc(10) }), 13);
  });
});
