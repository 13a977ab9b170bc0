import type { Bus, BusHandler } from './bus.js';
import { TopicTree, validateTopicName } from './topic-tree.js';

/** Told about an exception thrown by a handler; delivery to the other subscribers goes on. */
export type BusErrorHandler = (err: unknown, topic: string) => void;

/** One subscribe() call. Its own object, so the same handler subscribed twice is two subscriptions. */
interface Subscription {
  readonly handler: BusHandler;
  active: boolean;
}

/**
 * The embedded Bus: an in-process topic tree. Delivery is synchronous: when publish() returns, every
 * subscriber has been called, unless publish() was itself called from a handler (see below).
 *
 * Handlers share the payload Buffer and must not modify it.
 */
export class LocalBus implements Bus {
  readonly #tree = new TopicTree<Subscription>();
  readonly #onError: BusErrorHandler;
  /** Messages published by handlers while a delivery is running, delivered after it (see publish()). */
  #pending: { topic: string; payload: Buffer }[] = [];
  #delivering = false;
  #closed = false;

  /** `onError` defaults to a process warning: a faulty handler is visible but never takes the process down. */
  constructor(onError: BusErrorHandler = defaultOnError) {
    this.#onError = onError;
  }

  publish(topic: string, payload: Buffer): void {
    const problem = validateTopicName(topic);
    if (problem !== null) throw new TypeError(`invalid topic ${JSON.stringify(topic)}: ${problem}`);
    if (this.#closed) return;
    if (this.#delivering) {
      // A handler publishing: queue rather than recurse, so every subscriber sees messages in publish
      // order (a nested delivery would let a later message overtake the one being delivered) and a
      // chain of handlers cannot grow the stack.
      this.#pending.push({ topic, payload });
      return;
    }
    this.#delivering = true;
    try {
      this.#deliver(topic, payload);
      // Batch by batch, so a long chain holds one generation of messages, not its whole history.
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        this.#pending = [];
        for (const next of batch) this.#deliver(next.topic, next.payload);
      }
    } finally {
      this.#pending = [];
      this.#delivering = false;
    }
  }

  subscribe(filter: string, handler: BusHandler): () => void {
    if (this.#closed) throw new Error('the bus is closed');
    const sub: Subscription = { handler, active: true };
    this.#tree.add(filter, sub); // throws TypeError on an invalid filter
    return () => {
      if (!sub.active) return;
      sub.active = false;
      this.#tree.remove(filter, sub);
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#pending = [];
    this.#tree.clear();
  }

  /** Subscriptions held; for metrics and tests. */
  get subscriptionCount(): number {
    return this.#tree.size;
  }

  #deliver(topic: string, payload: Buffer): void {
    // A snapshot, so handlers may subscribe and unsubscribe while it is delivered: a subscription made
    // now waits for the next message, one removed now is skipped (checked through `active`).
    const subs = this.#tree.match(topic);
    for (const sub of subs) {
      if (!sub.active || this.#closed) continue;
      try {
        sub.handler(topic, payload);
      } catch (err) {
        this.#report(err, topic);
      }
    }
  }

  #report(err: unknown, topic: string): void {
    try {
      this.#onError(err, topic);
    } catch {
      // An onError that throws must not break delivery either.
    }
  }
}

function defaultOnError(err: unknown, topic: string): void {
  process.emitWarning(`a bus handler for ${JSON.stringify(topic)} threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, {
    code: 'CLOUDREST_BUS_HANDLER',
  });
}
