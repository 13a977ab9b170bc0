import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FailureLimiter, PasswordAttempts, addressKey } from './failure-limiter.js';

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

  it('limit password checks per account and per address, a success clearing only the account', () => {
    const p = new PasswordAttempts({ maxFailures: 2, maxFailuresPerAddress: 3, windowMs: 60_000 });
    p.failed('ada@example.com', '2001:db8:1:2::1');
    p.failed('ada@example.com', '2001:db8:1:2::2');
    assert.ok(p.retryAfterMs('ada@example.com', '192.0.2.1') > 0, 'the account is limited from any address');
    p.succeeded('ada@example.com');
    assert.equal(p.retryAfterMs('ada@example.com', '192.0.2.1'), 0);
    p.failed('bob@example.com', '2001:db8:1:2::3');
    assert.ok(p.retryAfterMs('carol@example.com', '2001:db8:1:2:aaaa::9') > 0, 'the /64 is limited for every account');
    assert.equal(p.retryAfterMs('carol@example.com', '2001:db8:1:3::9'), 0);
  });
});
