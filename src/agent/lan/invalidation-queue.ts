import { invalidateEntryBytes } from '../../relay/protocol/lan-frames.js';

/** Targets kept for a hub that is not connected; the hub drops the device's whole cache on connect anyway. */
export const MAX_QUEUED_INVALIDATIONS = 256;

/**
 * Request targets changed by LAN writes while a hub link was down, to send (INVALIDATE) when it is up
 * again. Bounded and de-duplicated: when full, the oldest go; nothing is lost by that, because a hub
 * forgets every cached answer of a device when the device connects.
 */
export class InvalidationQueue {
  readonly #targets = new Set<string>();

  get size(): number {
    return this.#targets.size;
  }

  add(target: string): void {
    this.#targets.delete(target);
    this.#targets.add(target);
    if (this.#targets.size > MAX_QUEUED_INVALIDATIONS) this.#targets.delete(this.#targets.values().next().value!);
  }

  /** Empties the queue into batches that each fit one frame of `maxFrameBytes`. */
  drain(maxFrameBytes: number): string[][] {
    const batches: string[][] = [];
    let batch: string[] = [];
    let size = 2;
    for (const t of this.#targets) {
      const n = invalidateEntryBytes(t);
      if (2 + n > maxFrameBytes) continue; // can never go; the reconnect already dropped it
      if (size + n > maxFrameBytes) {
        batches.push(batch);
        batch = [];
        size = 2;
      }
      batch.push(t);
      size += n;
    }
    if (batch.length > 0) batches.push(batch);
    this.#targets.clear();
    return batches;
  }
}
