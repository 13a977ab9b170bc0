import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Reservation } from '../core/failure-limiter.js';
import { PasswordAttempts } from './password-attempts.js';

/** In-process limits answer at once: no promise on the embedded hub's login path. */
function reserve(p: PasswordAttempts, account: string, address: string): Reservation {
  const r = p.reserve(account, address);
  assert.ok(!(r instanceof Promise), 'answered synchronously');
  return r;
}

describe('password attempts', () => {
  const fail = (p: PasswordAttempts, account: string, address: string) => {
    const { attempt } = reserve(p, account, address);
    assert.ok(attempt, `a check of ${account} from ${address} is reserved`);
    attempt.failed();
  };

  it('limit password checks per account (from any address) and per address (IPv6 by /64, across accounts)', () => {
    const p = new PasswordAttempts({ maxFailures: 2, maxFailuresPerAddress: 3, windowMs: 60_000 });
    fail(p, 'ada@example.com', '2001:db8:1:2::1');
    fail(p, 'ada@example.com', '2001:db8:1:2::2');
    assert.ok(reserve(p, 'ada@example.com', '192.0.2.1').retryAfterMs > 0, 'the account is limited from any address');
    fail(p, 'bob@example.com', '2001:db8:1:2::3');
    assert.ok(reserve(p, 'carol@example.com', '2001:db8:1:2:aaaa::9').retryAfterMs > 0, 'the /64 is limited for every account');
    assert.ok(reserve(p, 'carol@example.com', '2001:db8:1:3::9').attempt);
  });

  it('a success clears the account\'s failures, not the address\'s', () => {
    const p = new PasswordAttempts({ maxFailures: 2, maxFailuresPerAddress: 3, windowMs: 60_000 });
    fail(p, 'ada@example.com', '127.0.0.1');
    reserve(p, 'ada@example.com', '127.0.0.1').attempt!.succeeded();
    fail(p, 'ada@example.com', '127.0.0.1');
    assert.ok(reserve(p, 'ada@example.com', '127.0.0.2').attempt, 'one failure on the account since the success');
    fail(p, 'bob@example.com', '127.0.0.1');
    assert.ok(reserve(p, 'carol@example.com', '127.0.0.1').retryAfterMs > 0, 'the address kept its three failures');
  });

  it('reserve in both limits before the hash: concurrent checks beyond either limit are refused unchecked', () => {
    const p = new PasswordAttempts({ maxFailures: 10, maxFailuresPerAddress: 50, windowMs: 60_000 });
    const oneAccount = Array.from({ length: 1500 }, () => reserve(p, 'ada@example.com', '127.0.0.1'));
    assert.equal(oneAccount.filter((r) => r.attempt).length, 10);
    const manyAccounts = Array.from({ length: 1500 }, (_, i) => reserve(p, `user${i}@example.com`, '127.0.0.1'));
    assert.equal(manyAccounts.filter((r) => r.attempt).length, 40, 'the address has 10 in flight already');
    assert.ok(reserve(p, 'bob@example.com', '127.0.0.2').attempt, 'another address goes ahead');
  });

  it('an account refused by its own limit does not use up the address, and an address refusal gives the account back', () => {
    const p = new PasswordAttempts({ maxFailures: 1, maxFailuresPerAddress: 2, windowMs: 60_000 });
    fail(p, 'ada@example.com', '127.0.0.1');
    for (let i = 0; i < 5; i++) assert.equal(reserve(p, 'ada@example.com', '127.0.0.1').attempt, undefined);
    fail(p, 'bob@example.com', '127.0.0.1');
    assert.equal(reserve(p, 'carol@example.com', '127.0.0.1').attempt, undefined, 'the address is full');
    assert.ok(reserve(p, 'carol@example.com', '127.0.0.2').attempt, 'carol was not charged for the refusal');
  });

  it('a released check counts against neither limit', () => {
    const p = new PasswordAttempts({ maxFailures: 1, maxFailuresPerAddress: 1, windowMs: 60_000 });
    for (let i = 0; i < 5; i++) reserve(p, 'ada@example.com', '127.0.0.1').attempt!.release();
    fail(p, 'ada@example.com', '127.0.0.1');
    assert.ok(reserve(p, 'ada@example.com', '127.0.0.1').retryAfterMs > 0);
  });
});
