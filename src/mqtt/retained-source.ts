/**
 * Where the broker finds retained messages (issue 14). Two implementations pass
 * test/retained-source-contract.ts:
 *
 * - MemoryRetained: the trie in this process (retained.ts), filled from persistence at start. The
 *   embedded hub (SQLite, or memory only) uses its trie directly on the hot paths (BrokerCore), so a
 *   subscription's retained messages go out synchronously, as before.
 * - PostgresRetained (src/store/postgres/postgres-retained.ts): every node reads the one table, so a
 *   message retained on one node is there for a subscriber on any other at once, and none is loaded
 *   into memory. The quotas are counted in the database (migration 0010).
 *
 * `matching` is read a page at a time as the caller iterates: a subscription to `#` over a million
 * retained messages holds one page, and the caller (subscribe.ts) pulls the next only once the client
 * has room for it.
 */
import type { Message } from './message.js';
import { isExpired } from './message.js';
import type { RetainedEntry, RetainedStore } from './retained.js';
import type { RetainedQuotas } from './retained-usage.js';

export interface RetainedSource {
  /** Retained messages held in this process's memory (gauge cloudrest_mqtt_retained_in_memory). */
  readonly inMemory: number;
  /** Retained messages and their charged bytes hub-wide, as last known here (exact in memory; on PostgreSQL as of the last write or refresh). */
  readonly count: number;
  readonly bytes: number;
  /**
   * Stores `m` as its topic's retained message charged `bytes` to `owner`, or with an empty payload
   * clears it ([MQTT-3.3.1-6/7]). Resolves null once done, or (nothing changed) the quota that refuses
   * it; clearing is never refused, nor is a message set with `checked` false (the hub's own, counted
   * but never refused).
   */
  set(m: Message, owner: string, bytes: number, checked?: boolean): Promise<string | null>;
  /** The retained messages whose topic matches `filter` (valid, no `$share/`) and that have not expired at `now`, with RETAIN set. */
  matching(filter: string, now: number): AsyncIterable<Message>;
  /** Deletes the retained messages expired at `now`, so they stop counting against the quotas; refreshes `count` and `bytes`. */
  sweep(now: number): Promise<void>;
}

/** The quotas a RetainedSource enforces. */
export type { RetainedQuotas };

/**
 * A persistence (MqttPersistence) whose retained messages every node reads from the database
 * (PostgreSQL): the broker then keeps none in memory, loads none at start, and writes them through the
 * source, not setRetained. Kept off MqttPersistence so that persistence.ts imports no broker type.
 */
export interface SharesRetained {
  /** Called once, by the broker. */
  sharedRetained(quotas: RetainedQuotas): RetainedSource;
}

export function sharesRetained(p: object): p is SharesRetained {
  return typeof (p as Partial<SharesRetained>).sharedRetained === 'function';
}

export class MemoryRetained implements RetainedSource {
  /**
   * @param store the trie (BrokerCore's own, in the broker)
   * @param load reads the message of an entry kept on disk only (BrokerCore.loadRetained); without
   *   persistence every entry holds its message.
   */
  constructor(
    readonly store: RetainedStore,
    private readonly quotas: RetainedQuotas,
    private readonly load: (e: RetainedEntry) => Promise<Message | undefined> = (e) => Promise.resolve(e.message),
  ) {}

  get inMemory(): number {
    return this.store.size;
  }

  get count(): number {
    return this.store.size;
  }

  get bytes(): number {
    return this.store.usage.bytes;
  }

  set(m: Message, owner: string, bytes: number, checked = true): Promise<string | null> {
    if (m.payload.length === 0) {
      this.store.delete(m.topic);
      return Promise.resolve(null);
    }
    const why = checked ? this.store.usage.exceeded(owner, bytes, this.store.get(m.topic), this.quotas) : null;
    if (why === null) this.store.set({ topic: m.topic, message: { ...m, retain: true }, qos: m.qos, expiresAt: m.expiresAt, owner, bytes });
    return Promise.resolve(why);
  }

  async *matching(filter: string, now: number): AsyncIterable<Message> {
    for (const e of this.store.match(filter, now)) {
      const m = e.message ?? (await this.load(e));
      // Replaced or cleared while an earlier one was read.
      if (m !== undefined && !isExpired(m, now) && this.store.get(e.topic) === e) yield m;
    }
  }

  sweep(now: number): Promise<void> {
    for (const e of this.store.all()) if (e.expiresAt !== undefined && e.expiresAt <= now) this.store.delete(e.topic);
    return Promise.resolve();
  }
}
