/**
 * Which sessions a message goes to, and how (5.0 §4.7, §4.8; 3.1.1 §4.7). Ordinary subscriptions sit in
 * one topic tree; shared subscriptions (`$share/group/filter`) in another, one entry per group, each
 * message going to one member of each matching group, round-robin.
 */
import type { QoS } from 'mqtt-packet';
import { TopicTree } from '../core/topic-tree.js';
import type { Message } from './message.js';
import type { Session } from './session.js';
import type { Subscription } from './subscription.js';

/** One delivery to one session: what its matching subscriptions add up to. */
export interface Delivery {
  readonly session: Session;
  /** Highest Maximum QoS among the matching subscriptions; the message goes at min(its QoS, this). */
  qos: QoS;
  retainAsPublished: boolean;
  subscriptionIds: number[] | undefined;
  /** The shared subscription group it was picked for, so it can move to another member if this one leaves. */
  readonly group: SharedGroup | undefined;
}

export class SharedGroup {
  readonly members: Subscription[] = [];
  #next = 0;

  constructor(
    readonly name: string,
    readonly topicFilter: string,
  ) {}

  /** The filter as subscribed: `$share/{name}/{topicFilter}`. */
  get shareFilter(): string {
    return `$share/${this.name}/${this.topicFilter}`;
  }

  /**
   * The next member, round-robin: first one whose session can take the message now, else one that is
   * connected, else any (an offline persistent session queues it); never one that may not receive
   * `topic` (a member granted in part). `exclude` leaves one session out.
   */
  pick(topic: string, exclude?: Session): Subscription | undefined {
    const n = this.members.length;
    let connected = -1;
    let any = -1;
    for (let k = 0; k < n; k++) {
      const i = (this.#next + k) % n;
      const member = this.members[i]!;
      const s = member.session;
      if (s === exclude || (member.receive !== undefined && !member.receive.allows(topic))) continue;
      if (s.readyForDelivery) {
        this.#next = (i + 1) % n;
        return this.members[i];
      }
      if (connected === -1 && s.connected) connected = i;
      if (any === -1) any = i;
    }
    const i = connected !== -1 ? connected : any;
    if (i === -1) return undefined;
    this.#next = (i + 1) % n;
    return this.members[i];
  }
}

const NONE: Delivery[] = [];

export class Router {
  readonly #direct = new TopicTree<Subscription>();
  readonly #shared = new TopicTree<SharedGroup>();
  readonly #groups = new Map<string, SharedGroup>();
  #sharedCount = 0;
  #generation = 0;
  // The routing pass in progress, for #collect (one function for every message, not a closure each).
  #out: Delivery[] = NONE;
  #sender: string | undefined;
  #topic = '';
  /** Told about each subscription added or removed (the cluster's route table); unset on a single node. */
  onRoute: ((key: string, delta: 1 | -1) => void) | undefined;

  /** One matching subscription of the pass: a new delivery, or merged into its session's (see match). */
  readonly #collect = (sub: Subscription): void => {
    const s = sub.session;
    const out = this.#out;
    // [MQTT-3.8.3-3] No Local: not back to the connection that published it.
    if (sub.noLocal && this.#sender !== undefined && s.clientId === this.#sender) return;
    // Granted in part: only the topics its session may receive (hooks.authorizeReceive, cached per topic).
    if (sub.receive !== undefined && !sub.receive.allows(this.#topic)) return;
    if (s.routeMark !== this.#generation) {
      s.routeMark = this.#generation;
      s.routeIndex = out.length;
      const ids = sub.subscriptionId === undefined ? undefined : [sub.subscriptionId];
      out.push({ session: s, qos: sub.qos, retainAsPublished: sub.retainAsPublished, subscriptionIds: ids, group: undefined });
      return;
    }
    const d = out[s.routeIndex]!;
    if (sub.qos > d.qos) d.qos = sub.qos;
    if (sub.retainAsPublished) d.retainAsPublished = true;
    if (sub.subscriptionId !== undefined) (d.subscriptionIds ??= []).push(sub.subscriptionId);
  };

  /** Subscriptions held, shared ones included. */
  get size(): number {
    return this.#direct.size + this.#sharedCount;
  }

  /** The group of a shared filter as subscribed (`$share/{name}/{filter}`), while it has members. */
  sharedGroup(shareFilter: string): SharedGroup | undefined {
    return this.#groups.get(shareFilter);
  }

  add(sub: Subscription): void {
    this.onRoute?.(sub.filter, 1);
    if (sub.group === undefined) {
      this.#direct.add(sub.topicFilter, sub);
      return;
    }
    // Keyed by the filter as subscribed, `$share/{group}/{filter}` (a share name has no `/`).
    const key = sub.filter;
    let group = this.#groups.get(key);
    if (group === undefined) {
      group = new SharedGroup(sub.group, sub.topicFilter);
      this.#groups.set(key, group);
      this.#shared.add(sub.topicFilter, group);
    }
    group.members.push(sub);
    this.#sharedCount++;
  }

  remove(sub: Subscription): void {
    if (sub.group === undefined) {
      if (this.#direct.remove(sub.topicFilter, sub)) this.onRoute?.(sub.filter, -1);
      return;
    }
    const key = sub.filter;
    const group = this.#groups.get(key);
    const i = group?.members.indexOf(sub) ?? -1;
    if (group === undefined || i === -1) return;
    group.members.splice(i, 1);
    this.#sharedCount--;
    this.onRoute?.(sub.filter, -1);
    if (group.members.length === 0) {
      this.#groups.delete(key);
      this.#shared.remove(sub.topicFilter, group);
    }
  }

  /**
   * The deliveries for `m`: one per session with matching ordinary subscriptions ([MQTT-3.3.4-2]: the
   * highest QoS of them, every Subscription Identifier in one PUBLISH, [MQTT-3.3.4-3/4/5]), plus one per
   * matching shared group.
   */
  match(m: Message): Delivery[] {
    const out: Delivery[] = [];
    ++this.#generation;
    this.#out = out;
    this.#sender = m.senderId;
    this.#topic = m.topic;
    this.#direct.forEach(m.topic, this.#collect);
    this.#out = NONE;
    if (this.#sharedCount > 0) {
      this.#shared.forEach(m.topic, (group) => {
        const sub = group.pick(m.topic);
        if (sub !== undefined) out.push(sharedDelivery(sub, group));
      });
    }
    return out;
  }

  /** Another member of `group` than `leaving`, for a message `leaving` will not acknowledge (5.0 §4.8.2). */
  redeliveryTarget(group: SharedGroup, leaving: Session, topic: string): Delivery | undefined {
    const sub = group.pick(topic, leaving);
    return sub === undefined ? undefined : sharedDelivery(sub, group);
  }
}

function sharedDelivery(sub: Subscription, group: SharedGroup): Delivery {
  const ids = sub.subscriptionId === undefined ? undefined : [sub.subscriptionId];
  return { session: sub.session, qos: sub.qos, retainAsPublished: sub.retainAsPublished, subscriptionIds: ids, group };
}
