/**
 * Sends forwarded messages to other nodes' channels: the frames of one turn of the event loop for one
 * node go in one Redis PUBLISH (forward-batch.ts: a header, then each frame with its u32 length
 * before it), in order, on the one command connection, so a busy node sends one command per node per
 * turn, not one per message, and the order per publisher and topic holds.
 *
 * A batch holding a QoS 1/2 message asks for a confirmation (forward-confirmer.ts): its QoS 1/2
 * senders learn whether the other node stored it; QoS 0 senders only whether Redis took it.
 * Redis's answer to PUBLISH is how many subscribers got it: 0 (the node is dead, or its subscription
 * connection gone) fails the batch at once rather than at the timeout.
 */
import type { Redis } from 'ioredis';
import { encodeBatchHeader } from './forward-batch.js';
import type { PendingBatches } from './forward-confirmer.js';

/** A batch is sent once it reaches this size (and at the end of each turn). */
const MAX_BATCH_BYTES = 256 * 1024;

interface Batch {
  readonly frames: Buffer[];
  bytes: number;
  /** QoS 1/2 frames: their senders wait for the confirmation. */
  confirming: number;
  /** Redis took it (answered the PUBLISH). */
  readonly taken: Deferred;
  /** The node confirmed it (made for the first QoS 1/2 frame). */
  confirmed: Deferred | undefined;
}

interface Deferred {
  readonly promise: Promise<boolean>;
  readonly resolve: (ok: boolean) => void;
}

function deferred(): Deferred {
  let resolve!: (ok: boolean) => void;
  const promise = new Promise<boolean>((r) => (resolve = r));
  return { promise, resolve };
}

export class ForwardSender {
  readonly #outgoing = new Map<string, Batch>();
  #scheduled = false;

  constructor(
    private readonly redis: Redis,
    private readonly from: string,
    private readonly pending: PendingBatches,
    /** The channel of a node. */
    private readonly channel: (nodeId: string) => string,
    /** A batch Redis did not take or no node received: how many frames, to which node, why. */
    private readonly onFailure: (nodeId: string, frames: number, why: string) => void,
  ) {}

  /**
   * Queues a framed forward for `nodeId`. The promise is its batch's: with `confirm` (QoS 1/2), true
   * once the node confirmed it; without, true once Redis took it (delivered or not: QoS 0 is fire-and-forget).
   */
  send(nodeId: string, frame: Buffer, confirm: boolean): Promise<boolean> {
    let batch = this.#outgoing.get(nodeId);
    if (batch === undefined || batch.bytes + frame.length > MAX_BATCH_BYTES) {
      if (batch !== undefined) this.#send(nodeId, batch);
      batch = { frames: [], bytes: 0, confirming: 0, taken: deferred(), confirmed: undefined };
      this.#outgoing.set(nodeId, batch);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#sendAll);
      }
    }
    batch.frames.push(frame);
    batch.bytes += frame.length;
    if (!confirm) return batch.taken.promise;
    batch.confirming++;
    return (batch.confirmed ??= deferred()).promise;
  }

  readonly #sendAll = (): void => {
    this.#scheduled = false;
    for (const [nodeId, batch] of this.#outgoing) this.#send(nodeId, batch);
  };

  #send(nodeId: string, batch: Batch): void {
    this.#outgoing.delete(nodeId);
    // Opened before the PUBLISH: the confirmation may come in before Redis's answer.
    const open = batch.confirmed === undefined ? undefined : this.pending.open(nodeId, batch.confirming);
    if (open !== undefined) void open.confirmed.then(batch.confirmed!.resolve);
    const header = encodeBatchHeader({ from: this.from, epoch: this.pending.epoch, id: open?.id ?? 0 });
    this.redis.publish(this.channel(nodeId), Buffer.concat([header, ...batch.frames], header.length + batch.bytes)).then(
      (receivers) => {
        // QoS 0 is fire-and-forget: Redis took it, as before confirmations.
        batch.taken.resolve(true);
        if (receivers === 0) this.#failed(nodeId, batch, open?.id, 'no node received it (dead, or its Redis subscription is gone)');
      },
      (err: unknown) => {
        batch.taken.resolve(false);
        this.#failed(nodeId, batch, open?.id, (err as Error).message);
      },
    );
  }

  #failed(nodeId: string, batch: Batch, id: number | undefined, why: string): void {
    this.onFailure(nodeId, batch.frames.length, why);
    if (id !== undefined) this.pending.fail(id, why);
  }
}
