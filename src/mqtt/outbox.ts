/**
 * Messages on their way to one client (5.0 §4.3, §4.4, §4.9): a bounded queue of messages not sent
 * yet, and the inflight window of QoS 1/2 messages sent and not yet acknowledged, keyed by packet id.
 * For a persistent session every QoS 1/2 entry is mirrored in the persistence store, so that a restart
 * finds it (queued, in flight, or released).
 */
import type { QoS } from 'mqtt-packet';
import type { BrokerContext } from './context.js';
import { InflightTable } from './inflight.js';
import { fromStored, isExpired, toStored, type Message } from './message.js';
import { queuedSize, type OwnerAccount } from './owner-quotas.js';
import type { EnqueuedMessage, QueuedMessage } from './persistence.js';
import type { SharedGroup } from './router.js';

export interface Outgoing {
  readonly message: Message;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly subscriptionIds: number[] | undefined;
  /** The shared subscription group it was picked for, if any. */
  readonly group: SharedGroup | undefined;
  /** Packet identifier once sent at QoS 1/2; 0 before. */
  packetId: number;
  /** QoS 2: PUBREC received and PUBREL sent; waiting for PUBCOMP. */
  released: boolean;
  /** QoS 2, persistent session: the write of `released`, which the PUBREL waits for (made at the PUBREC). */
  releasing?: Promise<void>;
  /** Persistence sequence number, or the promise of it while the store writes. */
  seq: number | Promise<number> | undefined;
}

/** What the outbox needs of a connection: the channel implements it. */
export interface OutboxTarget {
  /** False while the transport is not draining: nothing more is written until it is. */
  readonly canWrite: boolean;
  /** QoS 1/2 messages that may be in flight at once: min(client's Receive Maximum, maxInflightPerClient). */
  readonly sendWindow: number;
  /** False when the PUBLISH would exceed the client's Maximum Packet Size. */
  fits(o: Outgoing): boolean;
  writePublish(o: Outgoing, dup: boolean): void;
  writePubrel(packetId: number, reasonCode?: number): void;
}

export class Outbox {
  #queue: Outgoing[] = [];
  #head = 0;
  /** By packet id; made on the first QoS 1/2 message (an idle client costs no table). */
  #inflight: InflightTable<Outgoing> | undefined;
  #nextId = 1;
  /** Mirror QoS 1/2 entries in the persistence store. */
  persistent = false;
  /** Bytes (queuedSize) of the messages queued or in flight here, also counted in the owner's account. */
  #bytes = 0;

  constructor(
    private readonly ctx: BrokerContext,
    private readonly clientId: string,
    /** The owner's totals, shared by its sessions (maxQueuedBytesPerOwner). */
    private readonly account: OwnerAccount,
  ) {}

  get queued(): number {
    return this.#queue.length - this.#head;
  }

  get inflight(): number {
    return this.#inflight?.size ?? 0;
  }

  /** True when a message given now would be written at once. */
  canSendNow(target: OutboxTarget | undefined): boolean {
    return target !== undefined && target.canWrite && this.#head === this.#queue.length && this.inflight < target.sendWindow;
  }

  /**
   * Sends `o` now if it can, else queues it (bounded: the drop policy decides who goes when full).
   * Returns the persistence write to wait for before acknowledging the publisher, if any.
   */
  add(o: Outgoing, target: OutboxTarget | undefined): Promise<void> | undefined {
    const { options, stats } = this.ctx;
    if (target !== undefined && target.canWrite && this.#head === this.#queue.length && (o.qos === 0 || this.inflight < target.sendWindow)) {
      const stored = this.#store(o);
      this.#send(o, target);
      return stored;
    }
    const size = queuedSize(o.message);
    const { quotas } = this.ctx;
    // Full: this client's queue (maxQueuedPerClient), or its owner's bytes across all its sessions.
    if (this.queued >= options.maxQueuedPerClient || !quotas.hasRoom(this.account, size)) {
      if (options.dropPolicy === 'drop-oldest') {
        // The oldest of this queue make room, as many as it takes (another session's queue is not this one's to cut).
        while (this.queued > 0 && (this.queued >= options.maxQueuedPerClient || !quotas.hasRoom(this.account, size))) {
          if (this.queued < options.maxQueuedPerClient) stats.droppedOwnerQuota++;
          const oldest = this.#queue[this.#head]!;
          this.#queue[this.#head++] = undefined as unknown as Outgoing;
          stats.queued--;
          stats.dropped++;
          this.#release(oldest);
          this.#forget(oldest);
        }
      }
      if (this.queued >= options.maxQueuedPerClient || !quotas.hasRoom(this.account, size)) {
        stats.dropped++;
        if (this.queued < options.maxQueuedPerClient) stats.droppedOwnerQuota++;
        return undefined;
      }
    }
    this.#queue.push(o);
    this.#hold(o);
    stats.queued++;
    return this.#store(o);
  }

  /** Sends queued messages while the transport drains and the inflight window has room. */
  pump(target: OutboxTarget | undefined): void {
    if (target === undefined) return;
    const now = this.ctx.now();
    const q = this.#queue;
    while (this.#head < q.length && target.canWrite) {
      const o = q[this.#head]!;
      if (o.qos > 0 && this.inflight >= target.sendWindow) break;
      q[this.#head++] = undefined as unknown as Outgoing;
      this.ctx.stats.queued--;
      this.#release(o);
      if (isExpired(o.message, now)) {
        // 5.0 [MQTT-3.3.2-5]: not delivered once the expiry interval has passed.
        this.ctx.stats.expired++;
        this.#forget(o);
        continue;
      }
      this.#send(o, target);
    }
    if (this.#head === q.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > q.length) {
      this.#queue = q.slice(this.#head);
      this.#head = 0;
    }
  }

  /** On a resumed session: every unacknowledged PUBLISH again with DUP, every PUBREL again ([MQTT-4.4.0-1]). */
  resend(target: OutboxTarget): void {
    for (const o of this.#inflight?.inOrder() ?? []) {
      if (o.released) target.writePubrel(o.packetId);
      else target.writePublish(o, true);
    }
    this.pump(target);
  }

  /** PUBACK: the QoS 1 delivery is complete ([MQTT-4.3.2-?] 5.0 §4.3.2). False if no such message. */
  puback(packetId: number): boolean {
    const o = this.#inflight?.get(packetId);
    if (o === undefined || o.qos !== 1) return false;
    this.#complete(o);
    return true;
  }

  /**
   * PUBREC: 'release' to answer with PUBREL, 'unknown' for a packet id not in flight, 'aborted' for a
   * failure code. The PUBREL waits for releasedWrite(packetId): sent before the store knows, a session
   * resumed from it (another node after a kill -9) would send the PUBLISH again, which the client,
   * done with the packet id, takes for a new message.
   */
  pubrec(packetId: number, reasonCode: number): 'release' | 'unknown' | 'aborted' {
    const o = this.#inflight?.get(packetId);
    if (o === undefined || o.qos !== 2) return 'unknown';
    if (reasonCode >= 0x80) {
      // 5.0 §4.3.3: a PUBREC with a failure code ends the exchange; no PUBREL.
      this.#complete(o);
      return 'aborted';
    }
    if (!o.released) {
      o.released = true;
      // The packet id again: its own earlier write may land after this one.
      o.releasing = this.#update(o, { packetId: o.packetId, released: true });
    }
    return 'release';
  }

  /** The persistence write of a released QoS 2 message's state, while it may still be running. */
  releasedWrite(packetId: number): Promise<void> | undefined {
    return this.#inflight?.get(packetId)?.releasing;
  }

  /** PUBCOMP: the QoS 2 delivery is complete. False if no such message was released. */
  pubcomp(packetId: number): boolean {
    const o = this.#inflight?.get(packetId);
    if (o === undefined || o.qos !== 2 || !o.released) return false;
    this.#complete(o);
    return true;
  }

  /** Drops QoS 0 messages waiting for a client that has gone (unless configured to keep them). */
  dropQos0(): void {
    if (this.ctx.options.queueQos0Offline) return;
    const before = this.queued;
    this.#queue = this.#queue.slice(this.#head).filter((o) => {
      if (o.qos === 0) this.#release(o);
      return o.qos > 0;
    });
    this.#head = 0;
    this.ctx.stats.queued -= before - this.#queue.length;
  }

  /** Empties the outbox (session ended), returning what was neither delivered nor acknowledged. */
  clear(): Outgoing[] {
    const pending = [...(this.#inflight?.inOrder() ?? []), ...this.#queue.slice(this.#head)];
    this.ctx.stats.inflight -= this.inflight;
    this.ctx.stats.queued -= this.queued;
    this.account.queuedBytes -= this.#bytes;
    this.#bytes = 0;
    this.#inflight = undefined;
    this.#queue = [];
    this.#head = 0;
    return pending;
  }

  /**
   * Takes out the entries `pick` names a destination for (in flight, then queued, oldest first), with
   * it; their persisted copies stay until discard(). For shared-subscription redelivery (5.0 §4.8.2).
   */
  takeWhere<T>(pick: (o: Outgoing) => T | undefined): Array<{ o: Outgoing; to: T }> {
    const out: Array<{ o: Outgoing; to: T }> = [];
    const inflight = this.#inflight;
    for (const o of inflight?.inOrder() ?? []) {
      const to = pick(o);
      if (to === undefined) continue;
      inflight!.delete(o.packetId);
      this.ctx.stats.inflight--;
      this.#release(o);
      out.push({ o, to });
    }
    const kept: Outgoing[] = [];
    for (let i = this.#head; i < this.#queue.length; i++) {
      const o = this.#queue[i]!;
      const to = pick(o);
      if (to === undefined) kept.push(o);
      else {
        this.ctx.stats.queued--;
        this.#release(o);
        out.push({ o, to });
      }
    }
    this.#queue = kept;
    this.#head = 0;
    return out;
  }

  /** Deletes the persisted copy of an entry taken out by takeWhere. */
  discard(o: Outgoing): void {
    this.#forget(o);
  }

  /** Rebuilds the outbox from the persistence store, in order: in-flight messages keep their packet ids. */
  restore(stored: QueuedMessage[]): void {
    for (const s of stored) {
      const o: Outgoing = {
        message: fromStored(s),
        qos: s.qos,
        retain: s.retain,
        subscriptionIds: s.subscriptionIds,
        // The session's subscriptions are back in the router already: the group is found by its name.
        group: s.shareGroup === undefined ? undefined : this.ctx.router.sharedGroup(s.shareGroup),
        packetId: s.packetId ?? 0,
        released: s.released === true,
        seq: s.seq,
      };
      this.#hold(o);
      if (o.packetId !== 0 && o.qos > 0 && this.#inflight?.has(o.packetId) !== true) {
        (this.#inflight ??= new InflightTable()).add(o);
        this.ctx.stats.inflight++;
        this.#nextId = (o.packetId % 65_535) + 1;
      } else {
        o.packetId = 0;
        this.#queue.push(o);
        this.ctx.stats.queued++;
      }
    }
  }

  #send(o: Outgoing, target: OutboxTarget): void {
    if (!target.fits(o)) {
      // [MQTT-3.1.2-25] discarded, as if it had been delivered.
      this.ctx.stats.dropped++;
      this.#forget(o);
      return;
    }
    if (o.qos > 0) {
      o.packetId = this.#allocateId();
      (this.#inflight ??= new InflightTable()).add(o);
      this.#hold(o);
      this.ctx.stats.inflight++;
      this.#update(o, { packetId: o.packetId });
    }
    target.writePublish(o, false);
  }

  #complete(o: Outgoing): void {
    this.#inflight!.delete(o.packetId);
    this.ctx.stats.inflight--;
    this.#release(o);
    this.#forget(o);
  }

  /** `o` is now queued or in flight here: its bytes count for the owner. */
  #hold(o: Outgoing): void {
    const n = queuedSize(o.message);
    this.#bytes += n;
    this.account.queuedBytes += n;
  }

  /** `o` left the queue or the inflight window. */
  #release(o: Outgoing): void {
    const n = queuedSize(o.message);
    this.#bytes -= n;
    this.account.queuedBytes -= n;
  }

  /** A free packet id ([MQTT-2.2.1-3]: non-zero, not in use). The window keeps fewer than 65,535 in use. */
  #allocateId(): number {
    for (;;) {
      const id = this.#nextId;
      this.#nextId = id === 65_535 ? 1 : id + 1;
      if (this.#inflight?.has(id) !== true) return id;
    }
  }

  #store(o: Outgoing): Promise<void> | undefined {
    const p = this.ctx.persistence;
    if (!this.persistent || p === undefined || o.qos === 0) return undefined;
    const stored: EnqueuedMessage = { ...toStored(o.message, o.qos, o.retain), subscriptionIds: o.subscriptionIds };
    if (o.group !== undefined) stored.shareGroup = o.group.shareFilter;
    const seq = p.enqueue(this.clientId, [stored]).then(([n]) => (o.seq = n!));
    o.seq = seq;
    return this.ctx.track(seq, 'persist a queued message').then(() => undefined);
  }

  #update(o: Outgoing, change: { packetId?: number; released?: boolean }): Promise<void> | undefined {
    return this.#withSeq(o, (p, seq) => p.updateQueued(this.clientId, seq, change), 'update a queued message');
  }

  #forget(o: Outgoing): void {
    void this.#withSeq(o, (p, seq) => p.removeQueued(this.clientId, seq), 'remove a queued message');
  }

  #withSeq(o: Outgoing, op: (p: NonNullable<BrokerContext['persistence']>, seq: number) => Promise<void>, context: string): Promise<void> | undefined {
    const p = this.ctx.persistence;
    const seq = o.seq;
    if (p === undefined || seq === undefined) return undefined;
    return this.ctx.track(typeof seq === 'number' ? op(p, seq) : seq.then((n) => op(p, n)), context).then(() => undefined);
  }
}
