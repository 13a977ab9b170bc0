/**
 * What every EventHistory (the SSE routes' Last-Event-ID resume, src/http/event-history.ts) must do,
 * run by test/contracts.test.ts against each implementation: MemoryEventHistory in one process, and
 * RedisEventHistory shared by the nodes so a stream resumes on any front. `make` gives a fresh history
 * with these options; `now` is its wall clock. Answers are awaited (a shared history gives promises).
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
    const a = await h.append('d1', 'notification', 'x');
    const b = await h.append('d2', 'status', 'online');
    const c = await h.append('d1', 'notification', 'y');
    assert.deepEqual([a.id, b.id, c.id], [T0 * 1000, T0 * 1000 + 1, T0 * 1000 + 2]);
    assert.deepEqual(b, { id: T0 * 1000 + 1, deviceId: 'd2', type: 'status', data: 'online' });
    assert.equal(h.lastId, c.id);
    assert.ok(Number.isSafeInteger(c.id));
  });

  it('issues larger ids after a restart than before it', async () => {
    const before = await implementation.make({ now: clock(T0) });
    let last = 0;
    for (let i = 0; i < 500; i++) last = (await before.append('d', 'notification', String(i))).id;
    const after = await implementation.make({ now: clock(T0 + 1) });
    assert.ok((await after.append('d', 'notification', 'x')).id > last);
  });

  it('returns what a device sent after the last id the client saw, complete', async () => {
    const h = await implementation.make({ now: clock() });
    const ids: number[] = [];
    for (const d of ['a', 'b', 'c', 'd']) ids.push((await h.append('dev', 'notification', d)).id);
    const r = await h.since(['dev'], ids[1]!);
    assert.deepEqual(r.events.map((e) => e.data), ['c', 'd']);
    assert.equal(r.complete, true);
    assert.deepEqual(await h.since(['dev'], ids[3]!), { events: [], complete: true });
  });

  it('merges several devices into one stream in id order', async () => {
    const h = await implementation.make({ now: clock() });
    const start = h.lastId;
    await h.append('a', 'notification', 'a1');
    await h.append('b', 'notification', 'b1');
    await h.append('c', 'notification', 'c1');
    await h.append('a', 'status', 'a2');
    await h.append('b', 'notification', 'b2');
    const r = await h.since(['a', 'b'], start);
    assert.deepEqual(r.events.map((e) => e.data), ['a1', 'b1', 'a2', 'b2']);
    assert.equal(r.complete, true);
    // A device named twice is not returned twice; an unknown one adds nothing.
    assert.deepEqual((await h.since(new Set(['c', 'c', 'zz']), start)).events.map((e) => e.data), ['c1']);
    assert.deepEqual((await h.since(['a', 'a'], start)).events.map((e) => e.data), ['a1', 'a2']);
  });

  it('says events may be missing when the last id is from before this history began', async () => {
    const h = await implementation.make({ now: clock() });
    await h.append('dev', 'notification', 'x');
    const r = await h.since(['dev'], T0 * 1000 - 5000);
    assert.deepEqual(r.events.map((e) => e.data), ['x']);
    assert.equal(r.complete, false);
    assert.equal((await h.since(['dev'], T0 * 1000 - 1)).complete, true, 'the id before the first is a valid cursor');
  });

  it('replays everything held, marked incomplete, for an id it never issued (clock went back)', async () => {
    const h = await implementation.make({ now: clock() });
    await h.append('dev', 'notification', 'x');
    await h.append('dev', 'notification', 'y');
    const r = await h.since(['dev'], T0 * 1000 + 1_000_000);
    assert.deepEqual(r.events.map((e) => e.data), ['x', 'y']);
    assert.equal(r.complete, false);
  });

  it('keeps the newest events of each device up to its limit, and says when older ones after the cursor are gone', async () => {
    const h = await implementation.make({ now: clock(), eventHistory: 3 });
    const start = h.lastId;
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await h.append('busy', 'notification', `b${i}`)).id);
    await h.append('quiet', 'notification', 'q0');
    const r = await h.since(['busy', 'quiet'], start);
    assert.deepEqual(r.events.map((e) => e.data), ['b2', 'b3', 'b4', 'q0']);
    assert.equal(r.complete, false, 'b0 and b1 are gone');
    assert.equal((await h.since(['busy'], ids[1]!)).complete, true, 'nothing after b1 is gone');
    assert.deepEqual((await h.since(['busy'], ids[1]!)).events.map((e) => e.data), ['b2', 'b3', 'b4']);
    assert.equal((await h.since(['quiet'], start)).complete, true, "the busy device's losses are its own");
  });
};
