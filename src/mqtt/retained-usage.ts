/**
 * What the retained messages cost, per owner (the principal that published each one) and in all, and
 * the quotas on it. A publish that would pass a quota is refused (5.0 PUBACK/PUBREC 0x97 Quota
 * exceeded). An owner replacing its own retained message on a topic is refused only if the message
 * grows past a byte quota (never on count: it adds no topic), and clearing one is never refused: both
 * are how an owner frees quota. Replacing another owner's message charges it to the new owner.
 */
export interface RetainedQuotas {
  /** Retained messages one owner may have. */
  readonly maxPerOwner: number;
  /** Bytes of retained messages one owner may have. */
  readonly maxBytesPerOwner: number;
  /** Retained messages hub-wide. */
  readonly maxTotal: number;
  /** Bytes of retained messages hub-wide. */
  readonly maxBytes: number;
}

export interface Tally {
  count: number;
  bytes: number;
}

export class RetainedUsage {
  count = 0;
  bytes = 0;
  readonly #owners = new Map<string, Tally>();

  add(owner: string, bytes: number): void {
    this.count++;
    this.bytes += bytes;
    let t = this.#owners.get(owner);
    if (t === undefined) this.#owners.set(owner, (t = { count: 0, bytes: 0 }));
    t.count++;
    t.bytes += bytes;
  }

  remove(owner: string, bytes: number): void {
    this.count--;
    this.bytes -= bytes;
    const t = this.#owners.get(owner);
    if (t === undefined) return;
    t.count--;
    t.bytes -= bytes;
    if (t.count <= 0) this.#owners.delete(owner);
  }

  /** What `owner` holds now. */
  of(owner: string): Readonly<Tally> {
    return this.#owners.get(owner) ?? { count: 0, bytes: 0 };
  }

  /**
   * Which quota storing `bytes` for `owner` would exceed, or null if none. `previous` is the topic's
   * current retained message, which the new one would replace.
   */
  exceeded(owner: string, bytes: number, previous: { owner: string; bytes: number } | undefined, q: RetainedQuotas): string | null {
    return quotaExceeded(this.of(owner), this, owner, bytes, previous, q);
  }

}

/**
 * Which quota storing `bytes` for `owner` would exceed, or null if none, given what the owner (`mine`)
 * and the hub (`total`) hold now; `previous` is the topic's current retained message, which the new one
 * would replace. The same rule in memory (RetainedUsage) and on PostgreSQL's counters (PostgresRetained).
 */
export function quotaExceeded(mine: Readonly<Tally>, total: Readonly<Tally>, owner: string, bytes: number, previous: { owner: string; bytes: number } | undefined, q: RetainedQuotas): string | null {
  // What the owner and the hub would hold afterwards.
  const same = previous !== undefined && previous.owner === owner;
  const ownerCount = mine.count + (same ? 0 : 1);
  const ownerBytes = mine.bytes + bytes - (same ? previous.bytes : 0);
  const totalCount = total.count + (previous === undefined ? 1 : 0);
  const totalBytes = total.bytes + bytes - (previous?.bytes ?? 0);
  // A replacement that does not grow is always allowed, even over quotas lowered since.
  if (previous !== undefined && bytes <= previous.bytes && same) return null;
  if (previous === undefined && totalCount > q.maxTotal) return `the hub holds ${q.maxTotal} retained messages`;
  if (previous === undefined || !same) {
    if (ownerCount > q.maxPerOwner) return `${q.maxPerOwner} retained messages per owner`;
  }
  if (ownerBytes > q.maxBytesPerOwner && ownerBytes > mine.bytes) return `${q.maxBytesPerOwner} bytes of retained messages per owner`;
  if (totalBytes > q.maxBytes && totalBytes > total.bytes) return `${q.maxBytes} bytes of retained messages in all`;
  return null;
}
