import type { TunnelChannel } from './channel.js';
import { FRAME_TYPE_NAMES, ProtocolError, type Frame } from './frames.js';

/** Which end of a tunnel: the hub opens request streams, the agent answers them. */
export type Role = 'hub' | 'agent';

const MAX_STREAM_ID = 0x7fffffff;

/**
 * The open streams of one tunnel session: their ids (the hub opens them, the agent's are the peer's),
 * and the flow-control credit they owe the peer. Credit is batched: a channel that consumed bytes
 * queues itself, and its WINDOW goes out once the current read is parsed, so one read yields one WINDOW
 * per stream, and none for a stream whose answer ended in the same read.
 */
export class StreamTable {
  readonly #open = new Map<number, TunnelChannel>();
  #credits: TunnelChannel[] = [];
  #flushScheduled = false;
  /** Set by the session while it parses a read: credit waits for the end of it. */
  parsing = false;
  /** The next id this end opens a stream with (hub side). */
  nextId = 1;
  /** The highest id the peer opened a stream with (agent side). */
  highestPeerId = 0;

  constructor(private readonly role: Role) {}

  get size(): number {
    return this.#open.size;
  }

  /** The last stream opened on this connection, by whichever end opens them (GOAWAY's last stream). */
  get lastOpened(): number {
    return this.role === 'hub' ? this.nextId - 1 : this.highestPeerId;
  }

  /** A fresh id for a stream this end opens; undefined once the 31-bit id space is used up. */
  takeId(): number | undefined {
    return this.nextId > MAX_STREAM_ID ? undefined : this.nextId++;
  }

  /** The peer opened stream `id`: ids only grow, so a reused one is a protocol error. */
  acceptPeerId(id: number): void {
    if (id <= this.highestPeerId) throw new ProtocolError(`REQUEST reuses stream id ${id}`);
    this.highestPeerId = id;
  }

  add(ch: TunnelChannel): void {
    this.#open.set(ch.id, ch);
  }

  /** Forgets stream `id`; true if it was open. */
  delete(id: number): boolean {
    return this.#open.delete(id);
  }

  /** The open stream a frame is for; undefined for a stream that already closed; error for one never opened. */
  streamFor(f: Frame): TunnelChannel | undefined {
    const s = this.#open.get(f.stream);
    if (s) return s;
    if (f.stream > this.lastOpened) throw new ProtocolError(`${FRAME_TYPE_NAMES[f.type]} frame for stream ${f.stream}, which was never opened`);
    return undefined;
  }

  /** A channel consumed answer bytes: its WINDOW goes out once the current read is parsed. */
  queueCredit(ch: TunnelChannel): void {
    this.#credits.push(ch);
    if (!this.parsing && !this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.flushCredits());
    }
  }

  flushCredits(): void {
    this.#flushScheduled = false;
    const credits = this.#credits;
    if (credits.length === 0) return;
    this.#credits = [];
    for (const ch of credits) ch.flushCredit();
  }

  /** The connection is gone: every open stream hears `err`, and none is left. */
  closeAll(err: Error): void {
    for (const s of [...this.#open.values()]) s.onSessionClosed(err);
    this.#open.clear();
  }
}
