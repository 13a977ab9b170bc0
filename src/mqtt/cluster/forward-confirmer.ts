/**
 * Confirmations of forwarded batches (forward-batch.ts), both ends:
 *
 * - PendingBatches, on the sending node: each batch that wants a confirmation waits here, bounded by
 *   a timeout, so the publisher's PUBACK / PUBREC is sent only once the other node has the message;
 *   a batch unconfirmed in time (the node died, its Redis subscription is gone) is a failure, told to
 *   the publisher as such, never an acknowledgement.
 * - ConfirmSender, on the receiving node: once a batch's messages are stored, its id goes back to the
 *   sender; the ids of one turn of the event loop for one sender go in one Redis PUBLISH.
 */
import { randomInt } from 'node:crypto';
import type { Redis } from 'ioredis';
import { decodeBatchHeader, eachFramed, encodeConfirmation } from './forward-batch.js';

interface Pending {
  readonly nodeId: string;
  /** Messages in the batch that wait for the confirmation (QoS 1/2). */
  readonly messages: number;
  readonly resolve: (ok: boolean) => void;
  readonly timer: NodeJS.Timeout;
}

export class PendingBatches {
  /** Drawn for each run of this node: confirmations meant for a previous run are ignored. */
  readonly epoch = randomInt(1, 0xffffffff);
  readonly #pending = new Map<number, Pending>();
  #next = 1;

  constructor(
    private readonly timeoutMs: number,
    /** A batch not confirmed: to which node, how many messages, why. */
    private readonly onUnconfirmed: (nodeId: string, messages: number, why: string) => void,
  ) {}

  get size(): number {
    return this.#pending.size;
  }

  /** A new batch for `nodeId` with `messages` QoS 1/2 messages: its id, and whether it was confirmed in time. */
  open(nodeId: string, messages: number): { id: number; confirmed: Promise<boolean> } {
    const id = this.#next;
    // Never 0 (no confirmation wanted), wrapping long before an id could still be pending.
    this.#next = id === 0xffffffff ? 1 : id + 1;
    let resolve!: (ok: boolean) => void;
    const confirmed = new Promise<boolean>((r) => (resolve = r));
    const timer = setTimeout(() => this.fail(id, `no confirmation within ${this.timeoutMs} ms`), this.timeoutMs);
    this.#pending.set(id, { nodeId, messages, resolve, timer });
    return { id, confirmed };
  }

  /** Confirmations received for this node (`epoch` its current run's, else ignored). */
  confirmed(epoch: number, ids: readonly number[]): void {
    if (epoch !== this.epoch) return;
    for (const id of ids) {
      const p = this.#pending.get(id);
      if (p === undefined) continue;
      this.#pending.delete(id);
      clearTimeout(p.timer);
      p.resolve(true);
    }
  }

  /** The batch cannot be confirmed (Redis did not take it, nobody received it, the timeout passed). */
  fail(id: number, why: string): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    this.onUnconfirmed(p.nodeId, p.messages, why);
    p.resolve(false);
  }

  /** Every batch still waiting fails (this node is closing). */
  failAll(why: string): void {
    for (const id of [...this.#pending.keys()]) this.fail(id, why);
  }
}

export class ConfirmSender {
  /** Ids to send at the end of this turn, by sender node and its epoch. */
  readonly #due = new Map<string, { nodeId: string; epoch: number; ids: number[] }>();
  #scheduled = false;

  constructor(
    private readonly redis: Redis,
    /** A node's confirmation channel. */
    private readonly channel: (nodeId: string) => string,
    private readonly onFailure: (nodeId: string, err: unknown) => void,
  ) {}

  /**
   * A batch received: each frame given to `deliver` (which returns the writes it waits for, if any),
   * then, when the sender asked, the confirmation once they are done. Returns how many frames. Throws
   * RangeError on an unreadable batch (nothing confirmed: the sender's timeout tells its publishers).
   */
  receive(batch: Buffer, deliver: (frame: Buffer) => Promise<unknown> | undefined): number {
    const h = decodeBatchHeader(batch);
    let stored: Array<Promise<unknown>> | undefined;
    let frames = 0;
    eachFramed(batch, (frame) => {
      frames++;
      const s = deliver(frame);
      if (s !== undefined) (stored ??= []).push(s);
    }, h.framesAt);
    if (h.id !== 0) this.after(stored === undefined ? undefined : Promise.all(stored), h.from, h.epoch, h.id);
    return frames;
  }

  /** Confirms batch `id` of `nodeId` (run `epoch`) once `stored` settles (the writes it waits for never reject). */
  after(stored: Promise<unknown> | undefined, nodeId: string, epoch: number, id: number): void {
    if (stored === undefined) this.#queue(nodeId, epoch, id);
    else void stored.then(() => this.#queue(nodeId, epoch, id));
  }

  #queue(nodeId: string, epoch: number, id: number): void {
    const key = `${nodeId}\u0000${epoch}`;
    let due = this.#due.get(key);
    if (due === undefined) this.#due.set(key, (due = { nodeId, epoch, ids: [] }));
    due.ids.push(id);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    for (const { nodeId, epoch, ids } of this.#due.values()) {
      // Lost, the sender's timeout tells its publishers: nothing is acknowledged without it.
      this.redis.publish(this.channel(nodeId), encodeConfirmation(epoch, ids)).catch((err: unknown) => this.onFailure(nodeId, err));
    }
    this.#due.clear();
  };
}
