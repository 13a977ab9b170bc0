/**
 * Rate limits for log lines a stranger can cause at will (a refused tunnel HELLO, a refused MQTT
 * CONNECT): at most one line per (kind, client address) per interval, then, once that interval is
 * over, one summary line saying how many like it were not written. Without it 15,000 refusals in 6 s
 * wrote 15,000 warnings: the log becomes the attacker's disk quota and hides everything else.
 *
 * Addresses are keyed with `addressKey` (an IPv6 address by its /64). The keys live in an LRU of
 * `maxKeys` entries, so memory is bounded whatever the number of addresses; an entry pushed out early
 * writes its summary then. One unref'd timer, armed only while some summary is owed.
 */
import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import { addressKey } from './failure-limiter.js';

export interface LogLimiterOptions {
  /** One line per (kind, address) per this many ms; 0 writes every line (no limit). */
  intervalMs: number;
  /** (kind, address) pairs tracked at most (least recently used dropped first, with their summary). */
  maxKeys: number;
  /** The clock (tests); Date.now by default. */
  now?: () => number;
}

type Level = 'warn' | 'info' | 'error';

interface Entry {
  kind: string;
  address: string;
  level: Level;
  windowStart: number;
  /** Lines not written since windowStart. */
  suppressed: number;
}

/** The message of a summary line; `kind` is in its fields too, for searching. */
export const SUPPRESSED_MSG = 'repeated log lines suppressed';

export class LogLimiter {
  readonly #entries: LRUCache<string, Entry>;
  /** Entries with a summary owed (bounded by the LRU). */
  readonly #owed = new Set<Entry>();
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly opts: LogLimiterOptions,
  ) {
    this.#now = opts.now ?? Date.now;
    this.#entries = new LRUCache({
      max: Math.max(1, opts.maxKeys),
      // Pushed out before its window ended: say now what it held back, so no count is ever lost.
      dispose: (e, _key, reason) => {
        if (reason === 'evict' || reason === 'delete') this.#summarise(e);
      },
    });
  }

  /**
   * Whether a line of `kind` about `address` may be written now. False counts it as suppressed: the
   * summary written after the interval includes it.
   */
  take(kind: string, address: string, level: Level = 'warn'): boolean {
    if (this.opts.intervalMs <= 0) return true;
    const now = this.#now();
    const addr = addressKey(address);
    const key = `${kind}\0${addr}`;
    const e = this.#entries.get(key);
    if (e === undefined || now - e.windowStart >= this.opts.intervalMs) {
      if (e !== undefined) this.#summarise(e);
      this.#entries.set(key, { kind, address: addr, level, windowStart: now, suppressed: 0 });
      return true;
    }
    e.suppressed++;
    e.level = level;
    if (e.suppressed === 1) {
      this.#owed.add(e);
      this.#arm();
    }
    return false;
  }

  /** `log.warn(fields, msg)` unless a line of this kind about this address was written within the interval. */
  warn(kind: string, address: string, fields: Record<string, unknown>, msg: string): void {
    if (this.take(kind, address, 'warn')) this.log.warn(fields, msg);
  }

  info(kind: string, address: string, fields: Record<string, unknown>, msg: string): void {
    if (this.take(kind, address, 'info')) this.log.info(fields, msg);
  }

  /** Writes every summary owed now and stops the timer (at shutdown). */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const e of [...this.#owed]) this.#summarise(e);
  }

  /** Pairs tracked (tests, metrics). */
  get size(): number {
    return this.#entries.size;
  }

  #summarise(e: Entry): void {
    if (!this.#owed.delete(e) || e.suppressed === 0) return;
    const n = e.suppressed;
    e.suppressed = 0;
    this.log[e.level]({ kind: e.kind, remoteAddress: e.address, suppressed: n, intervalMs: this.opts.intervalMs }, SUPPRESSED_MSG);
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#owed.size === 0) return;
    let due = Infinity;
    for (const e of this.#owed) due = Math.min(due, e.windowStart + this.opts.intervalMs);
    this.#timer = setTimeout(() => this.#flush(), Math.max(0, due - this.#now())).unref();
  }

  /** Summaries of the windows that are over; the next line of such a pair is written at once. */
  #flush(): void {
    this.#timer = undefined;
    const now = this.#now();
    for (const e of [...this.#owed]) {
      if (now - e.windowStart < this.opts.intervalMs) continue;
      this.#summarise(e);
      // A new window starts with the next occurrence, which is written.
      e.windowStart = -Infinity;
    }
    this.#arm();
  }
}
