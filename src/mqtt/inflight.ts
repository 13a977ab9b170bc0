/**
 * The QoS 1/2 messages sent to a client and not yet acknowledged, by packet id (5.0 §4.4, §4.9), for
 * the outbox. A Map did this before; but one set and one delete per message make V8 reallocate a Map's
 * table every few messages (deleted entries fill it until it is rebuilt, and it shrinks as it empties),
 * which was about 4 % of what the broker allocated per message at QoS 1. This table is open-addressed
 * with linear probing and backward-shift deletion, so a delete leaves no tombstone and the slots are
 * reused; it grows with the window and never shrinks. Packet ids are handed out in sequence, so the
 * id itself is the hash.
 */

export interface HasPacketId {
  readonly packetId: number;
}

const MIN_CAPACITY = 8;

export class InflightTable<T extends HasPacketId> {
  #slots: Array<T | undefined>;
  /** When each entry was added, beside it: a resumed session gets them again in that order ([MQTT-4.6.0-1]). */
  #added: Float64Array;
  #mask: number;
  #size = 0;
  #counter = 0;

  constructor(capacity = MIN_CAPACITY) {
    const n = Math.max(MIN_CAPACITY, 2 ** Math.ceil(Math.log2(capacity)));
    this.#slots = new Array<T | undefined>(n).fill(undefined);
    this.#added = new Float64Array(n);
    this.#mask = n - 1;
  }

  get size(): number {
    return this.#size;
  }

  get(packetId: number): T | undefined {
    const slots = this.#slots;
    for (let i = packetId & this.#mask; ; i = (i + 1) & this.#mask) {
      const e = slots[i];
      if (e === undefined || e.packetId === packetId) return e;
    }
  }

  has(packetId: number): boolean {
    return this.get(packetId) !== undefined;
  }

  /** Adds `e` under its packet id, which must not be in the table already. */
  add(e: T): void {
    if ((this.#size + 1) * 2 > this.#slots.length) this.#grow();
    this.#place(e, this.#counter++);
    this.#size++;
  }

  /** Removes the entry with this packet id; false if there is none. */
  delete(packetId: number): boolean {
    const slots = this.#slots;
    const added = this.#added;
    const mask = this.#mask;
    let i = packetId & mask;
    for (;;) {
      const e = slots[i];
      if (e === undefined) return false;
      if (e.packetId === packetId) break;
      i = (i + 1) & mask;
    }
    slots[i] = undefined;
    this.#size--;
    // Backward shift: move up any later entry of the run whose home slot is not between the hole and it.
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const e = slots[j];
      if (e === undefined) return true;
      const home = e.packetId & mask;
      const stays = i <= j ? i < home && home <= j : i < home || home <= j;
      if (stays) continue;
      slots[i] = e;
      added[i] = added[j]!;
      slots[j] = undefined;
      i = j;
    }
  }

  /** The entries, oldest first. */
  inOrder(): T[] {
    const entries: Array<{ e: T; at: number }> = [];
    this.#slots.forEach((e, i) => {
      if (e !== undefined) entries.push({ e, at: this.#added[i]! });
    });
    return entries.sort((a, b) => a.at - b.at).map((x) => x.e);
  }

  #place(e: T, at: number): void {
    const slots = this.#slots;
    let i = e.packetId & this.#mask;
    while (slots[i] !== undefined) i = (i + 1) & this.#mask;
    slots[i] = e;
    this.#added[i] = at;
  }

  #grow(): void {
    const old = this.#slots;
    const oldAdded = this.#added;
    const n = old.length * 2;
    this.#slots = new Array<T | undefined>(n).fill(undefined);
    this.#added = new Float64Array(n);
    this.#mask = n - 1;
    old.forEach((e, i) => {
      if (e !== undefined) this.#place(e, oldAdded[i]!);
    });
  }
}
