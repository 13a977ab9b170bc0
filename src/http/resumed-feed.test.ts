import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SseEvent, SseStream } from './sse.js';
import { MAX_HELD_EVENTS, ResumedFeed } from './resumed-feed.js';
import type { HistoryEvent } from './event-history.js';

/** A stream that records what it is sent. */
function stream(): SseStream & { sent: SseEvent[] } {
  const sent: SseEvent[] = [];
  let closed = false;
  return {
    sent,
    send: (e) => (closed ? false : (sent.push(e), true)),
    close: () => {
      closed = true;
    },
    get closed() {
      return closed;
    },
    onClose: () => {},
  };
}

const note = (id: number, message: string): HistoryEvent => ({ id, deviceId: 'd1', type: 'notification', data: message });
const live = (id: number, message: string) => ({ id, event: 'notification', data: JSON.stringify({ deviceId: 'd1', message }) });
const messages = (s: { sent: SseEvent[] }) => s.sent.filter((e) => e.event === 'notification').map((e) => `${e.id}:${(JSON.parse(e.data) as { message: string }).message}`);

describe('a resumed event stream', () => {
  it('sends an event once when another node recorded it and this node delivers it after the replay read it', () => {
    const sse = stream();
    const feed = new ResumedFeed(sse, true);
    // The replay read 11 and 12 (appended by another node); this node's own appends of them settle after.
    feed.replayed(10, { events: [note(11, 'missed 1'), note(12, 'missed 2')], complete: true });
    feed.live(live(11, 'missed 1'));
    feed.live(live(12, 'missed 2'));
    feed.live(live(13, 'new'));
    assert.deepEqual(messages(sse), ['11:missed 1', '12:missed 2', '13:new']);
  });

  it('holds live events until the replay is sent, then sends those the replay did not have, in order', () => {
    const sse = stream();
    const feed = new ResumedFeed(sse, true);
    feed.live(live(12, 'b'));
    feed.live(live(13, 'c'));
    assert.deepEqual(messages(sse), [], 'nothing overtakes the replay');
    feed.replayed(10, { events: [note(11, 'a'), note(12, 'b')], complete: true });
    assert.deepEqual(messages(sse), ['11:a', '12:b', '13:c']);
  });

  it('says a gap comes before the replay when some events are gone, and still sends what is left', () => {
    const sse = stream();
    const feed = new ResumedFeed(sse, true);
    feed.replayed(10, { events: [note(15, 'kept')], complete: false });
    assert.equal(sse.sent[0]!.event, 'gap');
    assert.deepEqual(JSON.parse(sse.sent[0]!.data).after, 10);
    assert.deepEqual(messages(sse), ['15:kept']);
  });

  it('never resends what the client saw before it reconnected, and sends events the history could not record', () => {
    const sse = stream();
    const feed = new ResumedFeed(sse, false);
    feed.replayed(20, { events: [], complete: true });
    feed.live(live(20, 'seen before'));
    feed.live({ event: 'notification', data: JSON.stringify({ deviceId: 'd1', message: 'unrecorded' }) });
    feed.live(live(21, 'next'));
    assert.deepEqual(messages(sse), ['undefined:unrecorded', '21:next']);
  });

  it('after an id the history never issued (a clock that went back), sends what it holds and what comes, though their ids are lower', () => {
    const sse = stream();
    const feed = new ResumedFeed(sse, true);
    feed.live(live(502, 'held'));
    feed.replayed(9_000, { events: [note(500, 'kept 1'), note(501, 'kept 2')], complete: false });
    feed.live(live(503, 'new'));
    assert.equal(sse.sent[0]!.event, 'gap');
    assert.deepEqual(messages(sse), ['500:kept 1', '501:kept 2', '502:held', '503:new']);
  });

  it('closes the stream, for the client to resume, when more live events come during the replay than it may hold', () => {
    const sse = stream();
    const feed = new ResumedFeed(sse, true);
    for (let i = 1; i <= MAX_HELD_EVENTS + 1; i++) feed.live(live(100 + i, `m${i}`));
    assert.equal(sse.closed, true);
  });
});
