/**
 * Session state (5.0 §4.1): what outlives a network connection for as long as the Session Expiry
 * Interval says: subscriptions, messages queued or in flight to the client (the outbox), and the
 * packet ids of QoS 2 messages received and not yet released.
 */
import type { QoS } from 'mqtt-packet';
import type { Channel } from './channel.js';
import type { BrokerContext } from './context.js';
import type { Message } from './message.js';
import { Outbox } from './outbox.js';
import type { StoredSession } from './persistence.js';
import type { SharedGroup } from './router.js';
import { toStoredSubscription, type Subscription } from './subscription.js';

/** A will whose Will Delay Interval is running ([MQTT-3.1.3-9]). */
export interface PendingWill {
  readonly message: Message;
  readonly principal: string;
  readonly timer: NodeJS.Timeout;
  /** When it is due (ms since epoch). */
  readonly dueAt: number;
}

const NO_SUBSCRIPTIONS: ReadonlyMap<string, Subscription> = new Map();

export class Session {
  /** By filter; made on the first subscription (an idle client costs no map). */
  #subscriptions: Map<string, Subscription> | undefined;
  /** QoS 2 packet ids received with PUBREC sent and no PUBREL yet ([MQTT-4.3.3-?] 5.0 §4.3.3); made on first use. */
  incomingQos2: Set<number> | undefined;
  readonly outbox: Outbox;
  /** The connection attached to this session, if any. */
  channel: Channel | undefined;
  /** ms since epoch when the last connection ended; null while connected. */
  disconnectedAt: number | null = null;
  expiryTimer: NodeJS.Timeout | undefined;
  pendingWill: PendingWill | undefined;
  /**
   * The persistence store holds a copy (saved, or restored from it): one to delete when the session
   * ends, also when its expiry was set to 0 since (5.0 §3.14.2.2.2, a DISCONNECT ending the session).
   */
  stored = false;
  /**
   * While retained messages are read from the shared database for this session (subscribe.ts): the
   * topics delivered live meanwhile, whose older retained message must not follow the newer one.
   */
  liveDuringReplay: Set<string> | undefined;
  /** Replays from the shared database in progress; liveDuringReplay is dropped when none is left. */
  replays = 0;
  /** Scratch fields for Router.match(): the routing pass that last touched this session, and its delivery. */
  routeMark = 0;
  routeIndex = 0;

  constructor(
    private readonly ctx: BrokerContext,
    readonly clientId: string,
    readonly owner: string,
    public protocolVersion: 3 | 4 | 5,
    expiryIntervalS: number,
  ) {
    this.outbox = new Outbox(ctx, clientId, ctx.quotas.account(owner));
    this.expiryIntervalS = expiryIntervalS;
  }

  #expiryIntervalS = 0;

  /** Seconds the session outlives its connection; 0 = it ends with the connection; 0xFFFFFFFF = never expires. */
  get expiryIntervalS(): number {
    return this.#expiryIntervalS;
  }

  set expiryIntervalS(s: number) {
    this.#expiryIntervalS = s;
    this.outbox.persistent = this.persistent;
  }

  /** Kept in the persistence store: it outlives its connection and there is a store. */
  get persistent(): boolean {
    return this.#expiryIntervalS > 0 && this.ctx.persistence !== undefined;
  }

  /** The session's subscriptions by filter (read-only: change them with addSubscription / removeSubscription). */
  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.#subscriptions ?? NO_SUBSCRIPTIONS;
  }

  addSubscription(sub: Subscription): void {
    (this.#subscriptions ??= new Map()).set(sub.filter, sub);
  }

  removeSubscription(filter: string): void {
    this.#subscriptions?.delete(filter);
  }

  clearSubscriptions(): void {
    this.#subscriptions = undefined;
  }

  get connected(): boolean {
    return this.channel !== undefined;
  }

  /** Connected, its transport draining and its inflight window open: a message given now goes out now. */
  get readyForDelivery(): boolean {
    return this.outbox.canSendNow(this.channel);
  }

  /**
   * Gives the session a message at `qos` (already min(publish QoS, subscription QoS)). Returns the
   * persistence write the publisher's acknowledgement must wait for, if any.
   */
  deliver(message: Message, qos: QoS, retain: boolean, subscriptionIds: number[] | undefined, group?: SharedGroup): Promise<void> | undefined {
    // Offline QoS 0: MQTT lets the server drop it (5.0 §3.1.2.4), and Mosquitto does by default.
    if (this.channel === undefined && qos === 0 && !this.ctx.options.queueQos0Offline) return undefined;
    return this.outbox.add({ message, qos, retain, subscriptionIds, group, packetId: 0, released: false, seq: undefined }, this.channel);
  }

  toStored(): StoredSession {
    return {
      clientId: this.clientId,
      owner: this.owner,
      protocolVersion: this.protocolVersion,
      expiryIntervalS: this.#expiryIntervalS,
      disconnectedAt: this.disconnectedAt,
      subscriptions: [...this.subscriptions.values()].map(toStoredSubscription),
    };
  }
}
