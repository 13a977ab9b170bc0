import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AttemptLimiter } from './attempt-limiter.js';

test('an address that fails too often waits until its window ends, others are not affected', () => {
  let now = 1_000;
  const l = new AttemptLimiter({ maxFailures: 3, windowMs: 10_000, maxAddresses: 100, now: () => now });
  for (let i = 0; i < 3; i++) {
    assert.equal(l.blockedForMs('10.0.0.1'), 0);
    l.recordFailure('10.0.0.1');
  }
  assert.equal(l.blockedForMs('10.0.0.1'), 10_000);
  assert.equal(l.blockedForMs('10.0.0.2'), 0);
  now += 9_999;
  assert.equal(l.blockedForMs('10.0.0.1'), 1);
  now += 1;
  assert.equal(l.blockedForMs('10.0.0.1'), 0, 'a new window starts with no failures');
  l.recordFailure('10.0.0.1');
  assert.equal(l.blockedForMs('10.0.0.1'), 0);
});

test('the number of tracked addresses stays within its bound under a flood of addresses', () => {
  const l = new AttemptLimiter({ maxFailures: 1, windowMs: 60_000, maxAddresses: 50 });
  for (let i = 0; i < 10_000; i++) l.recordFailure(`10.0.${i >> 8}.${i & 255}`);
  assert.equal(l.size, 50);
  assert.ok(l.blockedForMs('10.0.39.15') > 0, 'the most recent failures are still counted');
});
