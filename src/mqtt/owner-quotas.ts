/**
 * What each owner (the principal its sessions belong to: a device, a user) holds across all its
 * sessions: the sessions that outlive their connection, and the bytes of the messages waiting for them.
 * One set of credentials may open any number of client ids, so these sums, not a per-client-id limit,
 * are what bound it (issue 12: one device opened 2,000 sessions, whose queues then took 279 MB of the
 * database in 10 s).
 *
 * A session's slot is keyed by its client id and lasts as long as the session: from the CONNACK that
 * made it (or, after a restart, from the store) until it ends (clean start, expiry, an expiry of 0 at
 * DISCONNECT). Sessions that end with their connection (expiry 0) take no slot: the connection limits
 * bound those.
 */

/** One owner's totals; every session of the owner shares the same object. */
export interface OwnerAccount {
  readonly owner: string;
  /** Sessions that outlive their connection, in memory or only in the store. */
  sessions: number;
  /** Bytes (payload and topic) of messages queued for, or in flight to, the owner's sessions. */
  queuedBytes: number;
}

/** The bytes a message counts for against its owner's queued-bytes limit. */
export function queuedSize(m: { readonly topic: string; readonly payload: Buffer }): number {
  return m.payload.length + m.topic.length;
}

export class OwnerQuotas {
  /** By owner; bounded by the principals that have connected (devices and users), and never dropped, so an outbox keeps its account. */
  readonly #accounts = new Map<string, OwnerAccount>();
  /** The account each session slot is counted in, by client id. */
  readonly #slots = new Map<string, OwnerAccount>();

  /**
   * @param maxSessions sessions outliving their connection per owner; 0 = no limit.
   * @param maxQueuedBytes bytes waiting per owner across its sessions; 0 = no limit.
   */
  constructor(
    readonly maxSessions: number,
    readonly maxQueuedBytes: number,
  ) {}

  account(owner: string): OwnerAccount {
    let a = this.#accounts.get(owner);
    if (a === undefined) this.#accounts.set(owner, (a = { owner, sessions: 0, queuedBytes: 0 }));
    return a;
  }

  /** May `owner` have a session outliving its connection under `clientId`? Always when it already has that one. */
  admits(clientId: string, owner: string): boolean {
    if (this.maxSessions === 0 || this.#slots.get(clientId)?.owner === owner) return true;
    return (this.#accounts.get(owner)?.sessions ?? 0) < this.maxSessions;
  }

  /** Counts the session `clientId` for `owner` (moving it from another owner's count if need be). */
  hold(clientId: string, owner: string): void {
    const held = this.#slots.get(clientId);
    if (held?.owner === owner) return;
    if (held !== undefined) held.sessions--;
    const a = this.account(owner);
    a.sessions++;
    this.#slots.set(clientId, a);
  }

  /** Whether a session outliving its connection is counted under `clientId` (in memory or only in the store). */
  holds(clientId: string): boolean {
    return this.#slots.has(clientId);
  }

  /** The session `clientId` ended: its slot is free. */
  release(clientId: string): void {
    const held = this.#slots.get(clientId);
    if (held === undefined) return;
    held.sessions--;
    this.#slots.delete(clientId);
  }

  /** Whether `bytes` more fit in `a`'s queued-bytes limit. */
  hasRoom(a: OwnerAccount, bytes: number): boolean {
    return this.maxQueuedBytes === 0 || a.queuedBytes + bytes <= this.maxQueuedBytes;
  }

  /** Sessions counted for `owner`. */
  sessionsOf(owner: string): number {
    return this.#accounts.get(owner)?.sessions ?? 0;
  }
}
