import type { TunnelSession } from '../protocol/session.js';
import type { TunnelStream } from '../protocol/stream.js';
import type { RequestHead } from '../protocol/heads.js';

interface Waiter {
  resolve: (s: TunnelStream) => void;
  reject: (err: Error) => void;
  head: RequestHead;
  end: boolean;
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
   * Opens a stream now, or once a slot frees. Returns null when the queue is full.
   * The promise rejects if the tunnel closes first, or `signal` aborts (client went away).
   */
  open(head: RequestHead, end: boolean, signal?: AbortSignal): Promise<TunnelStream> | null {
    if (this.#inflight < this.maxInflight && this.#queue.length === 0) {
      return Promise.resolve(this.#start(head, end));
    }
    if (this.#queue.length >= this.maxQueued) return null;
    return new Promise<TunnelStream>((resolve, reject) => {
      const w: Waiter = { resolve, reject, head, end };
      this.#queue.push(w);
      signal?.addEventListener('abort', () => {
        const i = this.#queue.indexOf(w);
        if (i >= 0) {
          this.#queue.splice(i, 1);
          reject(new Error('request aborted while queued'));
        }
      }, { once: true });
    });
  }

  /** Rejects every queued request (the tunnel closed or was replaced). */
  failQueued(err: Error): void {
    for (const w of this.#queue.splice(0)) w.reject(err);
  }

  /** Re-issues every queued request through `open` (used on take-over). */
  transferQueued(open: (head: RequestHead, end: boolean) => Promise<TunnelStream> | null): void {
    for (const w of this.#queue.splice(0)) {
      const p = open(w.head, w.end);
      if (p) p.then(w.resolve, w.reject);
      else w.reject(new Error('queue full after take-over'));
    }
  }

  #start(head: RequestHead, end: boolean): TunnelStream {
    const s = this.session.request(head, end);
    this.#inflight++;
    s.once('close', () => {
      this.#inflight--;
      this.#next();
    });
    return s;
  }

  #next(): void {
    while (this.#inflight < this.maxInflight && this.#queue.length > 0) {
      const w = this.#queue.shift()!;
      try {
        w.resolve(this.#start(w.head, w.end));
      } catch (err) {
        w.reject(err as Error);
      }
    }
  }
}

/** Hands the queued requests of a replaced tunnel to its successor, in order. */
export function moveQueue(from: DeviceTunnel, to: DeviceTunnel): void {
  from.transferQueued((head, end) => to.open(head, end));
}
