import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FailureLimiter, addressKey } from './failure-limiter.js';

describe('failed-attempt limits', () => {
  it('refuse a key after maxFailures failures until the window from the first failure ends', () => {
    const l = new FailureLimiter({ maxFailures: 3, windowMs: 1000, maxKeys: 10 });
    for (let i = 0; i < 3; i++) {
      assert.equal(l.retryAfterMs('ada', 100 + i), 0);
      l.failed('ada', 100 + i);
    }
    assert.equal(l.retryAfterMs('ada', 200), 900);
    assert.equal(l.retryAfterMs('bob', 200), 0, 'other keys are not affected');
    assert.equal(l.retryAfterMs('ada', 1100), 0, 'the window ended');
    l.failed('ada', 1100);
    assert.equal(l.retryAfterMs('ada', 1101), 0, 'a new window starts with one failure');
  });

  it('an address that fails too often waits until its window ends, on the limiter\'s clock; others are not affected', () => {
    let now = 1_000;
    const l = new FailureLimiter({ maxFailures: 3, windowMs: 10_000, maxKeys: 100, now: () => now });
    for (let i = 0; i < 3; i++) {
      assert.equal(l.retryAfterMs('10.0.0.1'), 0);
      l.failed('10.0.0.1');
    }
    assert.equal(l.retryAfterMs('10.0.0.1'), 10_000);
    assert.equal(l.retryAfterMs('10.0.0.2'), 0);
    now += 9_999;
    assert.equal(l.retryAfterMs('10.0.0.1'), 1);
    now += 1;
    assert.equal(l.retryAfterMs('10.0.0.1'), 0, 'a new window starts with no failures');
    l.failed('10.0.0.1');
    assert.equal(l.retryAfterMs('10.0.0.1'), 0);
  });

  it('forget a key on success', () => {
    const l = new FailureLimiter({ maxFailures: 2, windowMs: 60_000, maxKeys: 10 });
    l.failed('ada');
    l.succeeded('ada');
    l.failed('ada');
    assert.equal(l.retryAfterMs('ada'), 0);
    l.failed('ada');
    assert.ok(l.retryAfterMs('ada') > 59_000);
  });

  it('hold at most maxKeys keys however many are tried', () => {
    const l = new FailureLimiter({ maxFailures: 1, windowMs: 60_000, maxKeys: 100 });
    for (let i = 0; i < 10_000; i++) l.failed(`k${i}`);
    assert.equal(l.size, 100);
    assert.ok(l.retryAfterMs('k9999') > 0, 'the newest keys are kept');
  });

  it('the number of tracked addresses stays within its bound under a flood of addresses', () => {
    const l = new FailureLimiter({ maxFailures: 1, windowMs: 60_000, maxKeys: 50 });
    for (let i = 0; i < 10_000; i++) l.failed(`10.0.${i >> 8}.${i & 255}`);
    assert.equal(l.size, 50);
    assert.ok(l.retryAfterMs('10.0.39.15') > 0, 'the most recent failures are still counted');
  });

  it('count IPv6 clients by /64 and IPv4-mapped clients by their IPv4 address', () => {
    assert.equal(addressKey('127.0.0.1'), '127.0.0.1');
    assert.equal(addressKey('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:0db8:0001:0002:ffff::1'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(addressKey('2001:db8:1:2::ffff:1.2.3.4'), '2001:db8:1:2::/64');
  });
});
