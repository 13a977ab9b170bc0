import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RetainedUsage } from './retained-usage.js';

const quotas = { maxPerOwner: 2, maxBytesPerOwner: 100, maxTotal: 3, maxBytes: 150 };

describe('retained quotas', () => {
  it('refuses a new topic past the owner\'s count or bytes, and past the hub\'s', () => {
    const u = new RetainedUsage();
    assert.equal(u.exceeded('a', 10, undefined, quotas), null);
    u.add('a', 10);
    u.add('a', 10);
    assert.match(u.exceeded('a', 1, undefined, quotas)!, /2 retained messages per owner/);
    assert.match(u.exceeded('b', 101, undefined, quotas)!, /100 bytes of retained messages per owner/);
    assert.match(u.exceeded('b', 100, undefined, { ...quotas, maxBytes: 110 })!, /110 bytes of retained messages in all/, '20 + 100 > 110');
    assert.equal(u.exceeded('b', 100, undefined, quotas), null);
    u.add('b', 100);
    assert.match(u.exceeded('c', 1, undefined, quotas)!, /the hub holds 3/);
  });

  it('always lets an owner replace its own message with one no larger, even over quotas lowered since', () => {
    const u = new RetainedUsage();
    u.add('a', 80);
    u.add('a', 80);
    u.add('a', 80);
    assert.equal(u.exceeded('a', 80, { owner: 'a', bytes: 80 }, quotas), null);
    assert.equal(u.exceeded('a', 1, { owner: 'a', bytes: 80 }, quotas), null);
    assert.notEqual(u.exceeded('a', 81, { owner: 'a', bytes: 80 }, quotas), null, 'growing while over is refused');
  });

  it('lets an owner grow its own message within the byte quotas, and charges another owner\'s topic to the new one', () => {
    const u = new RetainedUsage();
    u.add('a', 10);
    assert.equal(u.exceeded('a', 100, { owner: 'a', bytes: 10 }, quotas), null, '100 bytes once the 10 are freed');
    assert.notEqual(u.exceeded('a', 101, { owner: 'a', bytes: 10 }, quotas), null);
    u.add('b', 5);
    u.add('b', 5);
    assert.match(u.exceeded('b', 5, { owner: 'a', bytes: 10 }, quotas)!, /per owner/, 'b already has 2');
    assert.equal(u.exceeded('c', 5, { owner: 'a', bytes: 10 }, quotas), null, 'no new topic in all');
  });
});
