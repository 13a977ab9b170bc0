/**
 * What every EventHistory (the SSE routes' Last-Event-ID resume, src/http/event-history.ts) must do,
 * run by test/contracts.test.ts against each implementation: MemoryEventHistory in one process now, a
 * shared one (Redis) with the scale-out so a stream resumes on any front. `make` gives a fresh history
 * with these options; `now` is its wall clock.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { EventHistory, EventHistoryOptions } from '../src/http/event-history.js';
import type { ContractSuite } from './support/contracts.js';

const T0 = 1_700_000_000_000;
const clock = (ms = T0) => () => ms;

export const eventHistoryContract: ContractSuite<EventHistory, [options: EventHistoryOptions]> = (implementation) => {
  it('numbers events from the wall clock times 1000, one sequence across devices', async () => {
    const h = await implementation.make({ now: clock() });
    assert.equal(h.lastId, T0 * 1000 - 1);
    const a = h.append('d1', 'notification', 'x');
    const b = h.append('d2', 'status', 'online');
    const c = h.append('d1', 'notification', 'y');
    assert.deepEqual([a.id, b.id, c.id], [T0 * 1000, T0 * 1000 + 1, T0 * 1000 + 2]);
    assert.deepEqual(b, { id: T0 * 1000 + 1, deviceId: 'd2', type: 'status', data: 'online' });
    assert.equal(h.lastId, c.id);
    assert.ok(Number.isSafeInteger(c.id));
  });

  it('issues larger ids after a restart than before it', async () => {
    const before = await implementation.make({ now: clock(T0) });
    let last = 0;
    for (let i = 0; i < 500; i++) last = before.append('d', 'notification', String(i)).id;
    const after = await implementation.make({ now: clock(T0 + 1) });
    assert.ok(after.append('d', 'notification', 'x').id > last);
  });

  it('returns what a device sent after the last id the client saw, complete', async () => {
    const h = await implementation.make({ now: clock() });
    const ids = ['a', 'b', 'c', 'd'].map((d) => h.append('dev', 'notification', d).id);
    const r = h.since(['dev'], ids[1]!);
    assert.deepEqual(r.events.map((e) => e.data), ['c', 'd']);
    assert.equal(r.complete, true);
    assert.deepEqual(h.since(['dev'], ids[3]!), { events: [], complete: true });
  });

  it('merges several devices into one stream in id order', async () => {
    const h = await implementation.make({ now: clock() });
    const start = h.lastId;
    h.append('a', 'notification', 'a1');
    h.append('b', 'notification', 'b1');
    h.append('c', 'notification', 'c1');
    h.append('a', 'status', 'a2');
    h.append('b', 'notification', 'b2');
    const r = h.since(['a', 'b'], start);
    assert.deepEqual(r.events.map((e) => e.data), ['a1', 'b1', 'a2', 'b2']);
    assert.equal(r.complete, true);
    // A device named twice is not returned twice; an unknown one adds nothing.
    assert.deepEqual(h.since(new Set(['c', 'c', 'zz']), start).events.map((e) => e.data), ['c1']);
    assert.deepEqual(h.since(['a', 'a'], start).events.map((e) => e.data), ['a1', 'a2']);
  });

  it('says events may be missing when the last id is from before this history began', async () => {
    const h = await implementation.make({ now: clock() });
    h.append('dev', 'notification', 'x');
    const r = h.since(['dev'], T0 * 1000 - 5000);
    assert.deepEqual(r.events.map((e) => e.data), ['x']);
    assert.equal(r.complete, false);
    assert.equal(h.since(['dev'], T0 * 1000 - 1).complete, true, 'the id before the first is a valid cursor');
  });

  it('replays everything held, marked incomplete, for an id it never issued (clock went back)', async () => {
    const h = await implementation.make({ now: clock() });
    h.append('dev', 'notification', 'x');
    h.append('dev', 'notification', 'y');
    const r = h.since(['dev'], T0 * 1000 + 1_000_000);
    assert.deepEqual(r.events.map((e) => e.data), ['x', 'y']);
    assert.equal(r.complete, false);
  });
};
