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

  it('refuse a key after maxFailures failures until the window from the first attempt ends', () => {
    const l = new FailureLimiter({ maxFailures: 3, windowMs: 1000, maxKeys: 10 });
    for (let i = 0; i < 3; i++) {
      assert.equal(l.retryAfterMs('ada', 100 + i), 0);
      fail(l, 'ada', 100 + i);
    }
    assert.equal(l.retryAfterMs('ada', 200), 900);
    assert.deepEqual(l.reserve('ada', 200), { attempt: undefined, retryAfterMs: 900 });
    assert.equal(l.retryAfterMs('bob', 200), 0, 'other keys are not affected');
    assert.equal(l.retryAfterMs('ada', 1100), 0, 'the window ended');
    fail(l, 'ada', 1100);
    assert.equal(l.retryAfterMs('ada', 1101), 0, 'a new window starts with one failure');
  });

  it('an address that fails too often waits until its window ends, on the limiter\'s clock; others are not affected', () => {
    let now = 1_000;
    const l = new FailureLimiter({ maxFailures: 3, windowMs: 10_000, maxKeys: 100, now: () => now });
    for (let i = 0; i < 3; i++) {
      assert.equal(l.retryAfterMs('10.0.0.1'), 0);
      fail(l, '10.0.0.1');
    }
    assert.equal(l.retryAfterMs('10.0.0.1'), 10_000);
    assert.equal(l.retryAfterMs('10.0.0.2'), 0);
    now += 9_999;
    assert.equal(l.retryAfterMs('10.0.0.1'), 1);
    now += 1;
    assert.equal(l.retryAfterMs('10.0.0.1'), 0, 'a new window starts with no failures');
    fail(l, '10.0.0.1');
    assert.equal(l.retryAfterMs('10.0.0.1'), 0);
  });

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

  it('count checks in flight as failures: concurrent attempts beyond the limit are refused before any is settled', () => {
    const l = new FailureLimiter({ maxFailures: 10, windowMs: 60_000, maxKeys: 10 });
    const reserved = Array.from({ length: 1500 }, () => l.reserve('ada'));
    const granted = reserved.filter((r) => r.attempt !== undefined);
    assert.equal(granted.length, 10);
    assert.ok(reserved.slice(10).every((r) => r.attempt === undefined && r.retryAfterMs === 1000), 'come back in a second: the checks in flight may succeed');
    for (const r of granted) r.attempt!.failed();
    const after = l.reserve('ada');
    assert.ok(after.attempt === undefined && after.retryAfterMs > 59_000, 'ten failures keep the key refused until the window ends');
  });

  it('give a released reservation back without counting it, and settle each attempt only once', () => {
    const l = new FailureLimiter({ maxFailures: 2, windowMs: 60_000, maxKeys: 10 });
    const a = l.reserve('ada').attempt!;
    const b = l.reserve('ada').attempt!;
    assert.equal(l.reserve('ada').attempt, undefined, 'two in flight fill the limit');
    a.release();
    a.failed(); // already settled: no effect
    const c = l.reserve('ada').attempt!;
    assert.ok(c, 'the released slot is free again');
    b.failed();
    c.release();
    assert.equal(l.retryAfterMs('ada'), 0, 'one failure of two allowed');
    fail(l, 'ada');
    assert.ok(l.retryAfterMs('ada') > 0);
  });

  it('a success clears settled failures but not the other checks still in flight', () => {
    const l = new FailureLimiter({ maxFailures: 3, windowMs: 60_000, maxKeys: 10 });
    fail(l, 'ada');
    const right = l.reserve('ada').attempt!;
    const guess = l.reserve('ada').attempt!;
    right.succeeded();
    assert.ok(l.reserve('ada').attempt, 'the failure is forgotten');
    assert.ok(l.reserve('ada').attempt);
    assert.equal(l.reserve('ada').attempt, undefined, 'the guess in flight and the two new ones still count');
    guess.failed();
    assert.ok(l.retryAfterMs('ada') > 0);
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
