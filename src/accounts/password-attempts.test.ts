import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PasswordAttempts } from './password-attempts.js';

describe('password attempts', () => {
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
