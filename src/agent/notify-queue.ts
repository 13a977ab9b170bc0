import { EventEmitter } from 'node:events';

/** NOTIFY carries a u32 sequence number; 0 is not used (the hub treats it as "no sequence"). */
export const MAX_SEQ = 0xffffffff;

export interface QueuedNotification {
  seq: number;
  text: Buffer;
}

/**
 * The notifications not yet acknowledged by the hub, oldest first, at most `capacity` of them. Each
 * gets the next sequence number as it is queued. NOTIFY_ACK is cumulative: acknowledging seq n drops
 * everything up to n. Events:
 *
 * - 'added' (QueuedNotification): a notification was queued (send it if connected)
 * - 'space': acknowledgements freed room (inputs that stopped reading may resume)
 * - 'exhausted': the u32 sequence space is used up; call rebase() under a new bootId
 */
export class NotificationQueue extends EventEmitter {
  #items: QueuedNotification[] = [];
  #head = 0;
  #nextSeq = 1;

  constructor(readonly capacity: number) {
    super();
    // Every open input connection listens for 'space'.
    this.setMaxListeners(0);
  }

  get size(): number {
    return this.#items.length - this.#head;
  }

  get free(): number {
    return this.#nextSeq > MAX_SEQ ? 0 : this.capacity - this.size;
  }

  /** Queues a line; false (nothing queued) when the queue is full. */
  push(text: Buffer): boolean {
    if (this.#nextSeq > MAX_SEQ) return false;
    if (this.size >= this.capacity) return false;
    const item = { seq: this.#nextSeq++, text };
    this.#items.push(item);
    this.emit('added', item);
    if (this.#nextSeq > MAX_SEQ) this.emit('exhausted');
    return true;
  }

  /** Drops every notification with seq <= `seq`; returns how many. */
  ack(seq: number): number {
    const before = this.size;
    while (this.#head < this.#items.length && this.#items[this.#head]!.seq <= seq) this.#head++;
    // Compact now and then so the array does not keep acknowledged entries alive.
    if (this.#head > 64 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    const removed = before - this.size;
    if (removed > 0) this.emit('space');
    return removed;
  }

  /** Drops one notification that can never be sent (larger than the hub's frame limit). */
  remove(seq: number): void {
    const i = this.#items.findIndex((n, idx) => idx >= this.#head && n.seq === seq);
    if (i < 0) return;
    this.#items.splice(i, 1);
    this.emit('space');
  }

  /** The unacknowledged notifications, oldest first. */
  pending(): QueuedNotification[] {
    return this.#items.slice(this.#head);
  }

  /** Resolves once everything queued is acknowledged, `closer` emits 'close', or at the deadline. */
  drained(deadline: number, closer: EventEmitter): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.off('space', check);
        closer.off('close', done);
        resolve();
      };
      const check = (): void => {
        if (this.size === 0) done();
      };
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      this.on('space', check);
      closer.once('close', done);
    });
  }

  /**
   * Renumbers the pending notifications from 1. Only valid together with a new bootId: the hub drops
   * duplicates by bootId + seq, so old numbers under the old bootId would be dropped as seen.
   */
  rebase(): void {
    const items = this.pending();
    items.forEach((item, i) => (item.seq = i + 1));
    this.#items = items;
    this.#head = 0;
    this.#nextSeq = items.length + 1;
    this.emit('space');
  }
}

/**
 * Splits a byte stream into lines at LF (a CR before it is dropped). A line longer than `maxBytes` is
 * dropped, and never buffered beyond that limit: its bytes are skipped up to the next LF.
 */
export class LineSplitter {
  #parts: Buffer[] = [];
  #len = 0;
  #discarding = false;

  constructor(
    private readonly maxBytes: number,
    private readonly onLine: (line: Buffer) => void,
    private readonly onTooLong: () => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      if (!this.#discarding) {
        const seg = chunk.subarray(start, end);
        // One byte of slack for the CR of a CRLF line end.
        if (this.#len + seg.length > this.maxBytes + 1) {
          this.#reset();
          this.#discarding = true;
          this.onTooLong();
        } else if (seg.length > 0) {
          // A partial line is copied so it does not pin the whole chunk while we wait for its end.
          this.#parts.push(nl === -1 ? Buffer.from(seg) : seg);
          this.#len += seg.length;
        }
      }
      if (nl === -1) return;
      if (this.#discarding) this.#discarding = false;
      else this.#emit();
      this.#reset();
      start = nl + 1;
    }
  }

  /** The stream ended: a last line without LF still counts. */
  flush(): void {
    if (!this.#discarding) this.#emit();
    this.#reset();
    this.#discarding = false;
  }

  #emit(): void {
    if (this.#len === 0) return;
    // Copied (concat always copies), so a queued line does not pin the chunk it came in.
    let line = Buffer.concat(this.#parts, this.#len);
    if (line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (line.length > this.maxBytes) {
      this.onTooLong();
      return;
    }
    if (line.length > 0) this.onLine(line);
  }

  #reset(): void {
    this.#parts = [];
    this.#len = 0;
  }
}

/** Something that can stop and restart delivering data: a net.Socket. */
export interface Pausable {
  pause(): unknown;
  resume(): unknown;
}

/**
 * Feeds the lines of one reader (the FIFO, a unix-socket connection) into the queue. When the queue is
 * full the reader is paused, so the writer blocks (backpressure) instead of lines being dropped; the
 * lines already read wait here and go first once acknowledgements free room.
 */
export class LineFeeder {
  readonly #splitter: LineSplitter;
  #waiting: Buffer[] = [];
  #paused = false;
  #ended = false;
  readonly #onSpace = (): void => this.#drain();

  constructor(
    private readonly source: Pausable,
    private readonly queue: NotificationQueue,
    maxBytes: number,
    onTooLong: () => void,
  ) {
    this.#splitter = new LineSplitter(maxBytes, (line) => this.#offer(line), onTooLong);
    queue.on('space', this.#onSpace);
  }

  write(chunk: Buffer): void {
    this.#splitter.push(chunk);
  }

  /** The reader ended: its last line counts, and lines still waiting are queued as room frees. */
  end(): void {
    this.#splitter.flush();
    this.#ended = true;
    if (this.#waiting.length === 0) this.detach();
  }

  /** Stops listening to the queue and forgets waiting lines (the agent is stopping). */
  detach(): void {
    this.queue.off('space', this.#onSpace);
    this.#waiting = [];
  }

  get paused(): boolean {
    return this.#paused;
  }

  #offer(line: Buffer): void {
    if (this.#waiting.length === 0 && this.queue.push(line)) return;
    this.#waiting.push(line);
    if (!this.#paused) {
      this.#paused = true;
      this.source.pause();
    }
  }

  #drain(): void {
    while (this.#waiting.length > 0 && this.queue.push(this.#waiting[0]!)) this.#waiting.shift();
    if (this.#waiting.length > 0) return;
    if (this.#ended) this.detach();
    else if (this.#paused) {
      this.#paused = false;
      this.source.resume();
    }
  }
}
