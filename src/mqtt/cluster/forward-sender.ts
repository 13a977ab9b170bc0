/**
 * Sends forwarded messages to other nodes' channels: the frames of one turn of the event loop for one
 * node go in one Redis PUBLISH (each with its u32 length before it, encodeForwardFramed), in order, on
 * the one command connection, so a busy node sends one command per node per turn, not one per message,
 * and the order per publisher and topic holds.
 */
import type { Redis } from 'ioredis';

/** A batch is sent once it reaches this size (and at the end of each turn). */
const MAX_BATCH_BYTES = 256 * 1024;

interface Batch {
  readonly frames: Buffer[];
  bytes: number;
  readonly done: Promise<boolean>;
  readonly resolve: (ok: boolean) => void;
}

export class ForwardSender {
  readonly #outgoing = new Map<string, Batch>();
  #scheduled = false;

  constructor(
    private readonly redis: Redis,
    /** The channel of a node. */
    private readonly channel: (nodeId: string) => string,
    /** A batch Redis did not take: how many frames, to which node, why. */
    private readonly onFailure: (nodeId: string, frames: number, err: unknown) => void,
  ) {}

  /** Queues a framed forward for `nodeId`; the promise is its batch's: true once Redis took it. */
  send(nodeId: string, frame: Buffer): Promise<boolean> {
    let batch = this.#outgoing.get(nodeId);
    if (batch === undefined || batch.bytes + frame.length > MAX_BATCH_BYTES) {
      if (batch !== undefined) this.#send(nodeId, batch);
      let resolve!: (ok: boolean) => void;
      const done = new Promise<boolean>((r) => (resolve = r));
      batch = { frames: [], bytes: 0, done, resolve };
      this.#outgoing.set(nodeId, batch);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#sendAll);
      }
    }
    batch.frames.push(frame);
    batch.bytes += frame.length;
    return batch.done;
  }

  readonly #sendAll = (): void => {
    this.#scheduled = false;
    for (const [nodeId, batch] of this.#outgoing) this.#send(nodeId, batch);
  };

  #send(nodeId: string, batch: Batch): void {
    this.#outgoing.delete(nodeId);
    this.redis.publish(this.channel(nodeId), Buffer.concat(batch.frames, batch.bytes)).then(
      () => batch.resolve(true),
      (err: unknown) => {
        this.onFailure(nodeId, batch.frames.length, err);
        batch.resolve(false);
      },
    );
  }
}

/** Calls `fn` with each frame of a batch received; throws RangeError on a truncated one. */
export function eachFramed(batch: Buffer, fn: (frame: Buffer) => void): void {
  for (let at = 0; at < batch.length;) {
    if (at + 4 > batch.length) throw new RangeError('truncated forward batch');
    const end = at + 4 + batch.readUInt32BE(at);
    if (end > batch.length) throw new RangeError('truncated forward batch');
    fn(batch.subarray(at + 4, end));
    at = end;
  }
}
