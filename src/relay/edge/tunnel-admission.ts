/**
 * Which agent connections the edge takes, before any of them has authenticated: the bookkeeping behind
 * the tunnel server's limits, apart from sockets.
 *
 * - The HELLO deadline is absolute from accept (as MQTT's CONNECT deadline is, src/mqtt/deadlines.ts):
 *   a peer that trickles a HELLO one byte at a time is dropped at the same moment as one that sends
 *   nothing. Pending connections sit in accept order, so finding the expired ones stops at the first
 *   that is not.
 * - Connections still in the handshake have their own hub-wide cap (`maxHandshakes`), apart from the
 *   authenticated tunnels (`--max-tunnels`), so strangers who never authenticate cannot use up the
 *   slots of real agents. When it is full the oldest connection that has not sent a complete HELLO is
 *   dropped for the new one: an agent sends its HELLO right after connecting, so it is through before
 *   a flood of newer connections can push it out, while holding the slots would need the attacker to
 *   outpace the agent. Only if every pending connection is having its HELLO checked is the new one
 *   refused.
 * - At most `maxPerAddress` connections per client address (IPv6 by /64), handshake or not, counted
 *   from accept.
 */
import { AddressConnections } from '../../core/address-connections.js';

export interface TunnelAdmissionOptions {
  handshakeTimeoutMs: number;
  /** Connections in the handshake at once, hub-wide. */
  maxHandshakes: number;
  /** Connections per client address; 0 = no limit. */
  maxPerAddress: number;
}

interface Pending {
  acceptedAt: number;
  /** A complete HELLO arrived; it is being checked. */
  helloSeen: boolean;
}

export type Admission<S> =
  | { admitted: true; /** The oldest connection without a HELLO, dropped to make room. */ evicted?: S }
  | { admitted: false; why: 'address' | 'handshakes' };

export class TunnelAdmission<S> {
  /** In accept order (Map keeps insertion order): the oldest first. */
  readonly #pending = new Map<S, Pending>();
  readonly #addressOf = new Map<S, string>();
  readonly #perAddress: AddressConnections;

  constructor(private readonly opts: TunnelAdmissionOptions) {
    this.#perAddress = new AddressConnections(opts.maxPerAddress);
  }

  /** Counts `s` from `address` in, or says which limit refuses it. */
  admit(s: S, address: string, now: number): Admission<S> {
    const key = this.#perAddress.keyOf(address);
    if (this.opts.maxPerAddress > 0 && this.#perAddress.openFrom(key) >= this.opts.maxPerAddress) return { admitted: false, why: 'address' };
    let evicted: S | undefined;
    if (this.#pending.size >= this.opts.maxHandshakes) {
      evicted = this.#oldestWithoutHello();
      if (evicted === undefined) return { admitted: false, why: 'handshakes' };
      this.#pending.delete(evicted); // its close() follows; closed() then only releases its address
    }
    this.#pending.set(s, { acceptedAt: now, helloSeen: false });
    this.#addressOf.set(s, key);
    this.#perAddress.acquire(key);
    return evicted === undefined ? { admitted: true } : { admitted: true, evicted };
  }

  helloSeen(s: S): void {
    const p = this.#pending.get(s);
    if (p) p.helloSeen = true;
  }

  /** The handshake is over (WELCOME sent): no longer pending; still counted for its address. */
  established(s: S): void {
    this.#pending.delete(s);
  }

  closed(s: S): void {
    this.#pending.delete(s);
    const key = this.#addressOf.get(s);
    if (key === undefined) return;
    this.#addressOf.delete(s);
    this.#perAddress.release(key);
  }

  /** Pending connections whose handshake deadline has passed, oldest first. */
  expired(now: number): S[] {
    const out: S[] = [];
    for (const [s, p] of this.#pending) {
      if (now - p.acceptedAt < this.opts.handshakeTimeoutMs) break;
      out.push(s);
    }
    return out;
  }

  get pending(): number {
    return this.#pending.size;
  }

  /** Connections counted for `address`'s key (tests, metrics). */
  fromAddress(address: string): number {
    return this.#perAddress.openFrom(this.#perAddress.keyOf(address));
  }

  #oldestWithoutHello(): S | undefined {
    for (const [s, p] of this.#pending) if (!p.helloSeen) return s;
    return undefined;
  }
}
