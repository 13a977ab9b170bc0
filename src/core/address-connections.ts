/**
 * Open connections per client address (IPv6 by /64, as addressKey() says), for a cap that is counted
 * from accept, before any byte of the protocol: one address holding 15,000 idle sockets is what it stops
 * (issue 12). Memory is one entry per address with connections open, so bounded by the connections.
 */
import { addressKey } from './failure-limiter.js';

export class AddressConnections {
  readonly #open = new Map<string, number>();
  /** Connections refused since start (for metrics). */
  refusedTotal = 0;

  /** @param max connections per address; 0 = no limit. */
  constructor(readonly max: number) {}

  /** The key connections from `address` are counted under (addressKey: IPv6 by /64). */
  keyOf(address: string): string {
    return addressKey(address);
  }

  /** Counts one more connection under `key` (from keyOf); false, counted as refused, when it has `max` already. */
  acquire(key: string): boolean {
    const n = this.#open.get(key) ?? 0;
    if (this.max > 0 && n >= this.max) {
      this.refusedTotal++;
      return false;
    }
    this.#open.set(key, n + 1);
    return true;
  }

  /** One connection counted under `key` closed. */
  release(key: string): void {
    const n = this.#open.get(key);
    if (n === undefined) return;
    if (n <= 1) this.#open.delete(key);
    else this.#open.set(key, n - 1);
  }

  /** Connections open under `key`. */
  openFrom(key: string): number {
    return this.#open.get(key) ?? 0;
  }

  /** Addresses with connections open. */
  get addresses(): number {
    return this.#open.size;
  }
}
