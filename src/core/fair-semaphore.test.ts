import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BusyError, FairSemaphore } from './fair-semaphore.js';
import { PASSWORD_HASHER_DEFAULTS } from './password-hasher.js';
import { hubOptions } from '../config/hub-options.js';

/** Work that finishes when the test says so, recording when it started. */
function gate(log: string[], name: string) {
  let open!: () => void;
  const done = new Promise<void>((r) => (open = r));
  return { work: async () => { log.push(name); await done; return name; }, open };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('bounded password-hash slots', () => {
  it('run at most maxConcurrent at once; the rest wait and start as slots free', async () => {
    const s = new FairSemaphore({ maxConcurrent: 2, maxQueued: 10, maxWaitMs: 10_000 });
    const log: string[] = [];
    const gates = ['a', 'b', 'c', 'd'].map((n) => gate(log, n));
    const results = gates.map((g, i) => s.run(`k${i}`, g.work));
    await tick();
    assert.deepEqual(log, ['a', 'b']);
    assert.equal(s.running, 2);
    assert.equal(s.queued, 2);
    gates[0]!.open();
    await tick();
    assert.deepEqual(log, ['a', 'b', 'c']);
    for (const g of gates) g.open();
    assert.deepEqual(await Promise.all(results), ['a', 'b', 'c', 'd']);
    assert.equal(s.running, 0);
    assert.equal(s.queued, 0);
  });

  it('refuse at once, without running it, work past the queue\'s bound, with a Retry-After of at least a second', async () => {
    const s = new FairSemaphore({ maxConcurrent: 1, maxQueued: 2, maxWaitMs: 3000, maxQueuedPerKey: 2 });
    const log: string[] = [];
    const g = gate(log, 'running');
    const running = s.run('a', g.work);
    const waiting = [s.run('a', async () => 'w1'), s.run('b', async () => 'w2')];
    let ran = false;
    const refused = await s.run('c', async () => (ran = true)).catch((e: unknown) => e);
    assert.ok(refused instanceof BusyError);
    assert.equal(refused.retryAfterMs, 3000);
    assert.equal(ran, false);
    g.open();
    assert.deepEqual(await Promise.all([running, ...waiting]), ['running', 'w1', 'w2']);
    assert.equal(await s.run('c', async () => 'later'), 'later', 'room again once the queue drained');
  });

  it('let one key hold only its share of the queue, so others still get a place', async () => {
    const s = new FairSemaphore({ maxConcurrent: 1, maxQueued: 8, maxWaitMs: 10_000 });
    const log: string[] = [];
    const g = gate(log, 'running');
    const running = s.run('attacker', g.work);
    const mine = Array.from({ length: 2 }, () => s.run('attacker', async () => 'queued'));
    const over = await s.run('attacker', async () => 'never').catch((e: unknown) => e);
    assert.ok(over instanceof BusyError, 'a quarter of 8 is 2 per key');
    const other = s.run('user', async () => 'user');
    g.open();
    assert.deepEqual(await Promise.all([running, ...mine, other]), ['running', 'queued', 'queued', 'user']);
  });

  it('serve waiting keys in turn: a key that queued late waits for one turn, not behind every waiter of another key', async () => {
    const s = new FairSemaphore({ maxConcurrent: 1, maxQueued: 100, maxWaitMs: 10_000, maxQueuedPerKey: 100 });
    const order: string[] = [];
    const g = gate(order, 'first');
    const all = [s.run('attacker', g.work)];
    for (let i = 0; i < 20; i++) all.push(s.run('attacker', async () => { order.push(`attacker ${i}`); return ''; }));
    all.push(s.run('user', async () => { order.push('user'); return ''; }));
    g.open();
    await Promise.all(all);
    assert.deepEqual(order.slice(0, 3), ['first', 'attacker 0', 'user']);
  });

  it('refuse work that waited longer than maxWaitMs, and keep counting slots right after', async () => {
    const s = new FairSemaphore({ maxConcurrent: 1, maxQueued: 10, maxWaitMs: 30 });
    const log: string[] = [];
    const g = gate(log, 'slow');
    const slow = s.run('a', g.work);
    const late = await s.run('b', async () => 'never').catch((e: unknown) => e);
    assert.ok(late instanceof BusyError);
    assert.equal(s.queued, 0);
    g.open();
    await slow;
    assert.equal(s.running, 0);
    assert.equal(await s.run('b', async () => 'now'), 'now');
  });

  it('free the slot of work that throws', async () => {
    const s = new FairSemaphore({ maxConcurrent: 1, maxQueued: 0, maxWaitMs: 1000 });
    await assert.rejects(s.run('a', async () => { throw new Error('boom'); }), /boom/);
    assert.equal(s.running, 0);
    assert.equal(await s.run('a', async () => 'ok'), 'ok');
  });

  it('the password hasher\'s defaults are the hub options\' defaults', () => {
    assert.deepEqual(PASSWORD_HASHER_DEFAULTS, {
      maxConcurrent: hubOptions.maxConcurrentPasswordHashes.default,
      maxQueued: hubOptions.maxQueuedPasswordHashes.default,
      maxWaitMs: hubOptions.passwordHashMaxWaitMs.default,
    });
  });
});
