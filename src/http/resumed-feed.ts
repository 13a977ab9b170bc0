import type { SseStream } from './sse.js';
import type { HistoryEvent, SinceResult } from './event-history.js';

/** A live event on its way to a stream: `id` is absent when the history could not record it. */
export interface LiveEvent {
  id?: number;
  event: string;
  data: string;
}

/** Live events a stream may hold while its replay is read from a shared history (one round trip). */
export const MAX_HELD_EVENTS = 1000;

/**
 * What one SSE stream is sent: its Last-Event-ID replay, then live events, each id at most once and in
 * id order.
 *
 * With a shared history the replay and the live events race. Live events that come while the replay is
 * on its way are held, and sent after it. An event can also reach the history before this node's bus
 * delivers it: another node appended it, the replay read it, and this node's append of it (which gets
 * the same id back) settles only after the replay was sent. So a live event whose id the stream has
 * already been sent is dropped, rather than delivered twice.
 */
export class ResumedFeed {
  /** Live events held until the replay is sent; undefined once it was (or when there is none). */
  #held: LiveEvent[] | undefined;
  /** The newest id sent on this stream. */
  #sentUpTo = 0;

  constructor(
    readonly sse: SseStream,
    replayPending: boolean,
  ) {
    this.#held = replayPending ? [] : undefined;
  }

  /** Sends the replay after `lastId` (a `gap` event first when some of it is gone), then what was held. */
  replayed(lastId: number, { events, complete }: SinceResult): void {
    // A complete replay means the history knows `lastId`: the client saw everything up to it. An
    // incomplete one may answer an id the history never issued (another run's, or a clock that went
    // back): then lower ids are new to this client, and only what is sent here counts.
    if (complete && lastId > this.#sentUpTo) this.#sentUpTo = lastId;
    if (!complete) this.sse.send({ event: 'gap', data: JSON.stringify({ after: lastId, message: 'some events after this id are no longer available' }) });
    for (const e of events) this.#send(toSse(e));
    const held = this.#held;
    this.#held = undefined;
    if (held) for (const ev of held) this.#send(ev);
  }

  /** A live event: held while the replay is on its way, else sent unless its id was sent already. */
  live(ev: LiveEvent): void {
    if (this.#held === undefined) this.#send(ev);
    else if (this.#held.length < MAX_HELD_EVENTS) this.#held.push(ev);
    else this.sse.close(); // the client resumes with its Last-Event-ID
  }

  #send(ev: LiveEvent): void {
    if (ev.id !== undefined) {
      if (ev.id <= this.#sentUpTo) return;
      this.#sentUpTo = ev.id;
    }
    this.sse.send(ev);
  }
}

export function toSse(e: HistoryEvent): { id: number; event: string; data: string } {
  return { id: e.id, event: e.type, data: e.type === 'notification' ? JSON.stringify({ deviceId: e.deviceId, message: e.data }) : e.data };
}
