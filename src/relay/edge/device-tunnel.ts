import type { TunnelSession } from '../protocol/session.js';
import { TunnelChannel, type ChannelListener } from '../protocol/channel.js';
import type { RequestHead } from '../protocol/heads.js';

/** A relayed request waiting for a free slot on its device's tunnel. */
export interface QueuedRequest {
  promise: Promise<TunnelChannel>;
  /** Drops the request from the queue (its promise rejects); no effect once it has started. */
  cancel(): void;
}

interface Waiter {
  resolve: (s: TunnelChannel) => void;
  reject: (err: Error) => void;
  head: RequestHead;
  end: boolean;
  listener: ChannelListener;
}

/**
 * An authenticated agent connection for one device, with the device's request limits: at most
 * `maxInflight` streams open (the lower of the hub's limit and the agent's maxStreams), then a bounded
 * FIFO queue; past that the caller gets `null` and answers 429.
 */
export class DeviceTunnel {
  #inflight = 0;
  readonly #queue: Waiter[] = [];
  /** Highest NOTIFY seq seen from this agent process (bootId), for dropping resent duplicates. */
  lastNotifySeq = 0;

  constructor(
    readonly deviceId: string,
    readonly session: TunnelSession,
    readonly bootId: string,
    readonly connectedAt: number,
    readonly remoteAddress: string,
    private readonly maxInflight: number,
    private readonly maxQueued: number,
  ) {}

  get inflight(): number {
    return this.#inflight;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Opens a stream now when a slot is free (returned directly: no promise on the fast path), else
   * queues the request and returns it, to await and to cancel if the client goes away. Returns null
   * when the queue is full. A queued request rejects if the tunnel closes first.
   */
  open(head: RequestHead, end: boolean, listener: ChannelListener): TunnelChannel | QueuedRequest | null {
    if (this.#inflight < this.maxInflight && this.#queue.length === 0) return this.#start(head, end, listener);
    if (this.#queue.length >= this.maxQueued) return null;
    let waiter!: Waiter;
    const promise = new Promise<TunnelChannel>((resolve, reject) => {
      waiter = { resolve, reject, head, end, listener };
    });
    this.#queue.push(waiter);
    return {
      promise,
      cancel: () => {
        const i = this.#queue.indexOf(waiter);
        if (i >= 0) {
          this.#queue.splice(i, 1);
          waiter.reject(new Error('request cancelled while queued'));
        }
      },
    };
  }

  /** Rejects every queued request (the tunnel closed or was replaced). */
  failQueued(err: Error): void {
    for (const w of this.#queue.splice(0)) w.reject(err);
  }

  /** Re-issues every queued request through `open` (used on take-over). */
  transferQueued(open: (head: RequestHead, end: boolean, listener: ChannelListener) => TunnelChannel | QueuedRequest | null): void {
    for (const w of this.#queue.splice(0)) {
      const r = open(w.head, w.end, w.listener);
      if (r === null) w.reject(new Error('queue full after take-over'));
      else if (r instanceof TunnelChannel) w.resolve(r);
      else r.promise.then(w.resolve, w.reject);
    }
  }

  #start(head: RequestHead, end: boolean, listener: ChannelListener): TunnelChannel {
    const ch = this.session.openRequest(head, end, listener);
    this.#inflight++;
    ch.onClose = this.#onChannelClosed;
    return ch;
  }

  readonly #onChannelClosed = (): void => {
    this.#inflight--;
    this.#next();
  };

  #next(): void {
    while (this.#inflight < this.maxInflight && this.#queue.length > 0) {
      const w = this.#queue.shift()!;
      try {
        w.resolve(this.#start(w.head, w.end, w.listener));
      } catch (err) {
        w.reject(err as Error);
      }
    }
  }
}

/** Hands the queued requests of a replaced tunnel to its successor, in order. */
export function moveQueue(from: DeviceTunnel, to: DeviceTunnel): void {
  from.transferQueued((head, end, listener) => to.open(head, end, listener));
}
