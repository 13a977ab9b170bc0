/**
 * Every connection's next timer deadline (CONNECT timeout, keep alive) in one binary min-heap behind one
 * timer, instead of a Node timer per connection: at 10,000 idle connections the timers and their
 * closures were a tenth of the broker's memory per connection.
 *
 * Deadlines are lazy: a packet from the client does not touch the heap. When a deadline comes, the
 * holder checks whether it really expired and, if not, schedules the next one (keep alive: from its last
 * packet), so each connection costs at most one heap operation per keep alive period.
 */

/** What sits in the heap: the channel keeps its own place, so that it can be removed in O(log n). */
export interface DeadlineHolder {
  /** When it is due, in the broker clock's ms. */
  deadlineAt: number;
  /** Its index in the heap; -1 when not scheduled. */
  deadlineIndex: number;
  /** Called when `deadlineAt` has passed (it is out of the heap then and may schedule itself again). */
  onDeadline(now: number): void;
}

/** setTimeout's largest delay. */
const MAX_DELAY_MS = 2_147_483_647;

export class Deadlines {
  readonly #heap: DeadlineHolder[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** When the timer fires; Infinity when none is armed. */
  #armedFor = Infinity;
  #stopped = false;

  constructor(private readonly now: () => number) {}

  get size(): number {
    return this.#heap.length;
  }

  /** Schedules (or moves) `h` to fire at `at`. */
  schedule(h: DeadlineHolder, at: number): void {
    if (this.#stopped) return;
    if (h.deadlineIndex !== -1) this.cancel(h);
    h.deadlineAt = at;
    h.deadlineIndex = this.#heap.length;
    this.#heap.push(h);
    this.#up(h.deadlineIndex);
    if (at < this.#armedFor) this.#arm(at);
  }

  cancel(h: DeadlineHolder): void {
    const i = h.deadlineIndex;
    if (i === -1) return;
    h.deadlineIndex = -1;
    const last = this.#heap.pop()!;
    if (last === h) return;
    this.#heap[i] = last;
    last.deadlineIndex = i;
    this.#down(i);
    this.#up(last.deadlineIndex);
    // The timer may stay armed for a deadline that left: it then fires, finds nothing due, re-arms.
  }

  /** Clears the timer; nothing fires any more. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#armedFor = at;
    this.#timer = setTimeout(() => this.#fire(), Math.min(MAX_DELAY_MS, Math.max(0, at - this.now()))).unref();
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = this.now();
    const heap = this.#heap;
    while (heap.length > 0 && heap[0]!.deadlineAt <= now) {
      const h = heap[0]!;
      this.cancel(h);
      h.onDeadline(now);
    }
    if (heap.length > 0 && !this.#stopped && heap[0]!.deadlineAt < this.#armedFor) this.#arm(heap[0]!.deadlineAt);
  }

  #up(i: number): void {
    const heap = this.#heap;
    const h = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (p.deadlineAt <= h.deadlineAt) break;
      heap[i] = p;
      p.deadlineIndex = i;
      i = parent;
    }
    heap[i] = h;
    h.deadlineIndex = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const h = heap[i]!;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && heap[right]!.deadlineAt < heap[left]!.deadlineAt ? right : left;
      const c = heap[child]!;
      if (c.deadlineAt >= h.deadlineAt) break;
      heap[i] = c;
      c.deadlineIndex = i;
      i = child;
    }
    heap[i] = h;
    h.deadlineIndex = i;
  }
}
