import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Deadlines, type DeadlineHolder } from './deadlines.js';

function holder(name: string, fired: string[], again?: () => number | undefined, deadlines?: () => Deadlines): DeadlineHolder {
  const h: DeadlineHolder = {
    deadlineAt: 0,
    deadlineIndex: -1,
    onDeadline() {
      fired.push(name);
      const next = again?.();
      if (next !== undefined) deadlines!().schedule(h, next);
    },
  };
  return h;
}

describe('connection deadlines: one heap and one timer for every connection', () => {
  test('fires each deadline once, in time order, and never one that was cancelled', async () => {
    const d = new Deadlines(Date.now);
    const fired: string[] = [];
    const now = Date.now();
    // 300 holders in scrambled order, every tenth cancelled, some moved later.
    const all = Array.from({ length: 300 }, (_, i) => ({ i, h: holder(String(i), fired) }));
    for (const { i, h } of [...all].sort((a, b) => ((a.i * 7919) % 300) - ((b.i * 7919) % 300))) d.schedule(h, now + 20 + i);
    for (const { i, h } of all) if (i % 10 === 0) d.cancel(h);
    for (const { i, h } of all) if (i % 10 === 5) d.schedule(h, now + 400 + i);
    assert.equal(d.size, 270);
    await sleep(800);
    const expected = [...all.filter(({ i }) => i % 10 !== 0 && i % 10 !== 5), ...all.filter(({ i }) => i % 10 === 5)].map(({ i }) => String(i));
    assert.deepEqual(fired, expected);
    assert.equal(d.size, 0);
    d.stop();
  });

  test('lets a holder schedule itself again when its deadline comes, as keep alive does', async () => {
    const d = new Deadlines(Date.now);
    const fired: string[] = [];
    let rounds = 0;
    const h = holder('ka', fired, () => (++rounds < 3 ? Date.now() + 30 : undefined), () => d);
    d.schedule(h, Date.now() + 30);
    await sleep(300);
    assert.deepEqual(fired, ['ka', 'ka', 'ka']);
    assert.equal(h.deadlineIndex, -1);
    d.stop();
  });

  test('fires nothing once stopped', async () => {
    const d = new Deadlines(Date.now);
    const fired: string[] = [];
    d.schedule(holder('late', fired), Date.now() + 20);
    d.stop();
    await sleep(80);
    assert.deepEqual(fired, []);
  });
});
