import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FailureLimiter, addressKey } from './failure-limiter.js';

describe('failed-attempt limits', () => {
  /** Reserves an attempt for `key` and settles it as failed (a wrong secret). */
  const fail = (l: FailureLimiter, key: string, now?: number) => {
    const { attempt } = l.reserve(key, now);
    assert.ok(attempt, `an attempt for ${key} is reserved`);
    attempt.failed();
  };

  it('forget a key\'s failures on success', () => {
    const l = new FailureLimiter({ maxFailures: 2, windowMs: 60_000, maxKeys: 10 });
    fail(l, 'ada');
    l.reserve('ada').attempt!.succeeded();
    assert.equal(l.size, 0, 'nothing left to count');
    fail(l, 'ada');
    assert.equal(l.retryAfterMs('ada'), 0);
    fail(l, 'ada');
    assert.ok(l.retryAfterMs('ada') > 59_000);
  });

  it('hold at most maxKeys keys however many are tried', () => {
    const l = new FailureLimiter({ maxFailures: 1, windowMs: 60_000, maxKeys: 100 });
    for (let i = 0; i < 10_000; i++) fail(l, `k${i}`);
    assert.equal(l.size, 100);
    assert.ok(l.retryAfterMs('k9999') > 0, 'the newest keys are kept');
  });

  it('the number of tracked addresses stays within its bound under a flood of addresses', () => {
    const l = new FailureLimiter({ maxFailures: 1, windowMs: 60_000, maxKeys: 50 });
    for (let i = 0; i < 10_000; i++) fail(l, `10.0.${i >> 8}.${i & 255}`);
    assert.equal(l.size, 50);
    assert.ok(l.retryAfterMs('10.0.39.15') > 0, 'the most recent failures are still counted');
  });

  it('an attempt whose key was pushed out settles without touching the key\'s new window', () => {
    const l = new FailureLimiter({ maxFailures: 1, windowMs: 60_000, maxKeys: 2 });
    const old = l.reserve('ada').attempt!;
    fail(l, 'bob');
    fail(l, 'carol'); // ada is pushed out
    const fresh = l.reserve('ada').attempt!;
    old.succeeded();
    assert.equal(l.reserve('ada').attempt, undefined, 'the new reservation still counts');
    fresh.failed();
    assert.ok(l.retryAfterMs('ada') > 0);
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
