import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryEventHistory } from './event-history.js';

const T0 = 1_700_000_000_000;
const clock = (ms = T0) => () => ms;

describe('MemoryEventHistory', () => {
  it('keeps only the last N events per device and says when the client missed some', () => {
    const h = new MemoryEventHistory({ eventHistory: 3, now: clock() });
    const start = h.lastId;
    const ids = Array.from({ length: 5 }, (_, i) => h.append('dev', 'notification', String(i)).id);
    h.append('quiet', 'notification', 'q');
    assert.equal(h.size, 4);
    const r = h.since(['dev'], start);
    assert.deepEqual(r.events.map((e) => e.data), ['2', '3', '4']);
    assert.equal(r.complete, false);
    // A client that saw event 1 missed nothing: event 2 onwards is all still there.
    assert.equal(h.since(['dev'], ids[1]!).complete, true);
    assert.equal(h.since(['dev'], ids[0]!).complete, false);
    // One device's losses make a merged stream incomplete, another's do not affect it.
    assert.equal(h.since(['dev', 'quiet'], ids[0]!).complete, false);
    assert.equal(h.since(['quiet'], start).complete, true);
  });

  it('keeps nothing with eventHistory 0, and still reports the loss', () => {
    const h = new MemoryEventHistory({ eventHistory: 0, now: clock() });
    const start = h.lastId;
    const e = h.append('dev', 'notification', 'x');
    assert.equal(e.data, 'x');
    assert.equal(h.size, 0);
    assert.equal(h.deviceCount, 0);
    assert.deepEqual(h.since(['dev'], start), { events: [], complete: false });
    assert.deepEqual(h.since(['dev'], e.id), { events: [], complete: true });
  });

  it('stays within its byte budget across many devices, dropping the oldest events first', () => {
    const maxBytes = 100_000;
    const h = new MemoryEventHistory({ maxBytes, now: clock() });
    const start = h.lastId;
    const payload = 'p'.repeat(1000);
    for (let i = 0; i < 10_000; i++) {
      h.append(`dev-${i}`, 'notification', payload);
      assert.ok(h.bytes <= maxBytes);
    }
    assert.ok(h.size > 10 && h.size < 100, `held ${h.size}`);
    // Devices whose events all went are not remembered one by one, yet their losses are still reported.
    assert.equal(h.deviceCount, h.size);
    assert.deepEqual(h.since(['dev-0'], start), { events: [], complete: false });
    const newest = h.since(['dev-9999'], start);
    assert.equal(newest.events.length, 1);
    assert.equal(newest.complete, false, 'conservative: other devices lost events after this id');
    assert.equal(h.since(['dev-9999'], newest.events[0]!.id - 1).complete, true);
  });

  it('drops an event larger than the whole budget at once, reporting it as missed', () => {
    const h = new MemoryEventHistory({ maxBytes: 1000, now: clock() });
    const start = h.lastId;
    const e = h.append('dev', 'notification', 'x'.repeat(10_000));
    assert.equal(h.size, 0);
    assert.equal(h.bytes, 0);
    assert.deepEqual(h.since(['dev'], start), { events: [], complete: false });
    assert.deepEqual(h.since(['dev'], e.id), { events: [], complete: true });
  });

  it('forgets a deleted device entirely and frees its bytes', () => {
    const h = new MemoryEventHistory({ now: clock() });
    const start = h.lastId;
    h.append('gone', 'notification', 'a');
    h.append('kept', 'notification', 'b');
    h.append('gone', 'notification', 'c');
    h.forget('gone');
    h.forget('never-seen');
    assert.equal(h.size, 1);
    assert.equal(h.deviceCount, 1);
    assert.deepEqual(h.since(['gone', 'kept'], start).events.map((e) => e.data), ['b']);
    // New events after forget() are recorded normally.
    h.append('gone', 'notification', 'd');
    const again = h.since(['gone'], start);
    assert.deepEqual(again.events.map((e) => e.data), ['d']);
    assert.equal(again.complete, true);
    h.forget('kept');
    h.forget('gone');
    assert.equal(h.bytes, 0);
  });

  it('rejects a negative or fractional history size', () => {
    assert.throws(() => new MemoryEventHistory({ eventHistory: -1 }), RangeError);
    assert.throws(() => new MemoryEventHistory({ eventHistory: 1.5 }), RangeError);
  });
});
