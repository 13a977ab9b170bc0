/**
 * One node's forwards to the others and back (docs/mqtt.md "Cluster"): batches out on each node's
 * `mqtt:fwd:<nodeId>` (forward-sender.ts), batches in on this node's, and the confirmations of the
 * QoS 1/2 ones (forward-confirmer.ts) on `mqtt:fwd-ack:<nodeId>`. ClusterRoutes decides where each
 * message goes; this is how it gets there and how the publisher learns it did.
 */
import type { Redis } from 'ioredis';
import type { Message } from '../message.js';
import { decodeConfirmation } from './forward-batch.js';
import { ConfirmSender, PendingBatches } from './forward-confirmer.js';
import { decodeForward } from './forward-codec.js';
import { ForwardSender } from './forward-sender.js';

export interface ForwardsOptions {
  redis: Redis;
  keyPrefix: string;
  nodeId: string;
  /** How long a QoS 1/2 batch waits for its confirmation. */
  confirmTimeoutMs: number;
  /** A forwarded message for this node's sessions; returns the writes its confirmation waits for. */
  /** `groupsOnly`: a shared member's redelivery, for the named groups alone. */
  deliver(m: Message, groups: ReadonlySet<string> | undefined, groupsOnly: boolean): Promise<unknown> | undefined;
  /** Counters the caller reports (ClusterRouteStats). */
  stats: { forwardedIn: number; forwardFailed: number; unconfirmed: number };
  warn(message: string, details: Record<string, unknown>): void;
}

export class Forwards {
  /** The channels this node listens on for them. */
  readonly channels: readonly [string, string];
  readonly #pending: PendingBatches;
  readonly #sender: ForwardSender;
  readonly #confirms: ConfirmSender;
  readonly #o: ForwardsOptions;

  constructor(o: ForwardsOptions) {
    this.#o = o;
    const fwd = `${o.keyPrefix}mqtt:fwd:`;
    const ack = `${o.keyPrefix}mqtt:fwd-ack:`;
    this.channels = [fwd + o.nodeId, ack + o.nodeId];
    this.#pending = new PendingBatches(o.confirmTimeoutMs, (nodeId, messages, why) => {
      o.stats.unconfirmed += messages;
      o.warn('forward to another node not confirmed: its publishers were told it failed', { to: nodeId, err: why });
    });
    this.#sender = new ForwardSender(o.redis, o.nodeId, this.#pending, (nodeId) => fwd + nodeId, (nodeId, frames, why) => {
      o.stats.forwardFailed += frames;
      o.warn('forward to another node failed', { to: nodeId, err: why });
    });
    this.#confirms = new ConfirmSender(o.redis, (nodeId) => ack + nodeId, (nodeId, err) => o.warn('forward confirmation not sent', { to: nodeId, err: (err as Error).message }));
  }

  /** See ForwardSender.send: with `confirm` (QoS 1/2) true once `nodeId` stored it. */
  send(nodeId: string, frame: Buffer, confirm: boolean): Promise<boolean> {
    return this.#sender.send(nodeId, frame, confirm);
  }

  /** A message on one of `channels`: false if it was not one of them. Throws RangeError on an unreadable one. */
  arrived(channel: string, payload: Buffer): boolean {
    if (channel === this.channels[0]) {
      const now = Date.now();
      this.#o.stats.forwardedIn += this.#confirms.receive(payload, (frame) => {
        const f = decodeForward(frame, now);
        return this.#o.deliver(f.message, f.groups, f.groupsOnly);
      });
      return true;
    }
    if (channel !== this.channels[1]) return false;
    const c = decodeConfirmation(payload);
    this.#pending.confirmed(c.epoch, c.ids);
    return true;
  }

  /** The batches still waiting fail: their publishers are told (this node is closing). */
  close(): void {
    this.#pending.failAll('this node is closing');
  }
}
