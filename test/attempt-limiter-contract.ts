/**
 * The failed-attempt limit every AttemptLimiter keeps (src/core/failure-limiter.ts), run by
 * test/contracts.test.ts against each implementation: FailureLimiter in one process, RedisAttemptLimiter
 * shared by the nodes. `make` gives a fresh limiter with these options, on the clock they name.
 * Answers are awaited (a shared limiter answers with promises); settling returns at once, and what is
 * asked next of the same limiter sees it.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { AttemptLimiter, FailureLimiterOptions } from '../src/core/failure-limiter.js';
import type { ContractSuite } from './support/contracts.js';

export const attemptLimiterContract: ContractSuite<AttemptLimiter, [options: FailureLimiterOptions]> = (implementation) => {
  /** Reserves an attempt for `key` and settles it as failed (a wrong secret). */
  const fail = async (l: AttemptLimiter, key: string, now?: number) => {
    const { attempt } = await l.reserve(key, now);
    assert.ok(attempt, `an attempt for ${key} is reserved`);
    attempt.failed();
  };

  it('refuse a key after maxFailures failures until the window from the first attempt ends', async () => {
    const l = await implementation.make({ maxFailures: 3, windowMs: 1000, maxKeys: 10 });
    for (let i = 0; i < 3; i++) {
      assert.equal(await l.retryAfterMs('ada', 100 + i), 0);
      await fail(l, 'ada', 100 + i);
    }
    assert.equal(await l.retryAfterMs('ada', 200), 900);
    assert.deepEqual(await l.reserve('ada', 200), { attempt: undefined, retryAfterMs: 900 });
    assert.equal(await l.retryAfterMs('bob', 200), 0, 'other keys are not affected');
    assert.equal(await l.retryAfterMs('ada', 1100), 0, 'the window ended');
    await fail(l, 'ada', 1100);
    assert.equal(await l.retryAfterMs('ada', 1101), 0, 'a new window starts with one failure');
  });

  it('an address that fails too often waits until its window ends, on the limiter\'s clock; others are not affected', async () => {
    let now = 1_000;
    const l = await implementation.make({ maxFailures: 3, windowMs: 10_000, maxKeys: 100, now: () => now });
    for (let i = 0; i < 3; i++) {
      assert.equal(await l.retryAfterMs('10.0.0.1'), 0);
      await fail(l, '10.0.0.1');
    }
    assert.equal(await l.retryAfterMs('10.0.0.1'), 10_000);
    assert.equal(await l.retryAfterMs('10.0.0.2'), 0);
    now += 9_999;
    assert.equal(await l.retryAfterMs('10.0.0.1'), 1);
    now += 1;
    assert.equal(await l.retryAfterMs('10.0.0.1'), 0, 'a new window starts with no failures');
    await fail(l, '10.0.0.1');
    assert.equal(await l.retryAfterMs('10.0.0.1'), 0);
  });

  it('count checks in flight as failures: concurrent attempts beyond the limit are refused before any is settled', async () => {
    const l = await implementation.make({ maxFailures: 10, windowMs: 60_000, maxKeys: 10 });
    const reserved = await Promise.all(Array.from({ length: 1500 }, () => l.reserve('ada')));
    const granted = reserved.filter((r) => r.attempt !== undefined);
    assert.equal(granted.length, 10);
    assert.ok(reserved.slice(10).every((r) => r.attempt === undefined && r.retryAfterMs === 1000), 'come back in a second: the checks in flight may succeed');
    for (const r of granted) r.attempt!.failed();
    const after = await l.reserve('ada');
    assert.ok(after.attempt === undefined && after.retryAfterMs > 59_000, 'ten failures keep the key refused until the window ends');
  });

  it('give a released reservation back without counting it, and settle each attempt only once', async () => {
    const l = await implementation.make({ maxFailures: 2, windowMs: 60_000, maxKeys: 10 });
    const a = (await l.reserve('ada')).attempt!;
    const b = (await l.reserve('ada')).attempt!;
    assert.equal((await l.reserve('ada')).attempt, undefined, 'two in flight fill the limit');
    a.release();
    a.failed(); // already settled: no effect
    const c = (await l.reserve('ada')).attempt!;
    assert.ok(c, 'the released slot is free again');
    b.failed();
    c.release();
    assert.equal(await l.retryAfterMs('ada'), 0, 'one failure of two allowed');
    await fail(l, 'ada');
    assert.ok((await l.retryAfterMs('ada')) > 0);
  });

  it('a success clears settled failures but not the other checks still in flight', async () => {
    const l = await implementation.make({ maxFailures: 3, windowMs: 60_000, maxKeys: 10 });
    await fail(l, 'ada');
    const right = (await l.reserve('ada')).attempt!;
    const guess = (await l.reserve('ada')).attempt!;
    right.succeeded();
    assert.ok((await l.reserve('ada')).attempt, 'the failure is forgotten');
    assert.ok((await l.reserve('ada')).attempt);
    assert.equal((await l.reserve('ada')).attempt, undefined, 'the guess in flight and the two new ones still count');
    guess.failed();
    assert.ok((await l.retryAfterMs('ada')) > 0);
  });
};
