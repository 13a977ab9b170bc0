/** A client's subscription to one topic filter, with its MQTT 5 options (5.0 §3.8.3.1). */
import type { QoS } from 'mqtt-packet';
import { validateTopicFilter } from '../core/topic-tree.js';
import type { StoredSubscription } from './persistence.js';
import type { ReceiveCheck } from './receive-check.js';
import type { Session } from './session.js';

export interface Subscription {
  readonly session: Session;
  /** The filter as the client sent it, `$share/` prefix included: the key for replacing and unsubscribing. */
  readonly filter: string;
  /** The filter matched against topics: `filter` without any `$share/group/` prefix. */
  readonly topicFilter: string;
  /** Share name of a shared subscription (5.0 §4.8.2). */
  readonly group: string | undefined;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId: number | undefined;
  /** Granted only in part (hooks.authorizeSubscribe 'per-message'): each message's topic is checked; undefined when granted whole. */
  receive: ReceiveCheck | undefined;
}

export const SHARE_PREFIX = '$share/';

/** Splits a filter into share name and topic filter, or explains why it is invalid. */
export function parseFilter(filter: string): { group: string | undefined; topicFilter: string } | { problem: string } {
  if (!filter.startsWith(SHARE_PREFIX)) {
    const problem = validateTopicFilter(filter);
    return problem === null ? { group: undefined, topicFilter: filter } : { problem };
  }
  const slash = filter.indexOf('/', SHARE_PREFIX.length);
  const group = slash === -1 ? filter.slice(SHARE_PREFIX.length) : filter.slice(SHARE_PREFIX.length, slash);
  // [MQTT-4.8.2-1] a Share Name of at least one character; [MQTT-4.8.2-2] without '/', '+' or '#'.
  if (group.length === 0 || group.includes('+') || group.includes('#')) return { problem: 'invalid share name' };
  if (slash === -1) return { problem: 'a shared subscription needs a topic filter after the share name' };
  const topicFilter = filter.slice(slash + 1);
  const problem = validateTopicFilter(topicFilter);
  return problem === null ? { group, topicFilter } : { problem };
}

export function toStoredSubscription(s: Subscription): StoredSubscription {
  const out: StoredSubscription = { filter: s.filter, qos: s.qos, noLocal: s.noLocal, retainAsPublished: s.retainAsPublished, retainHandling: s.retainHandling };
  if (s.subscriptionId !== undefined) out.subscriptionId = s.subscriptionId;
  return out;
}

/** A subscription of `session` to `filter` (already checked with parseFilter). */
export function createSubscription(
  session: Session,
  filter: string,
  parsed: { group: string | undefined; topicFilter: string },
  o: Pick<StoredSubscription, 'qos' | 'noLocal' | 'retainAsPublished' | 'retainHandling' | 'subscriptionId'>,
): Subscription {
  return {
    session,
    filter,
    topicFilter: parsed.topicFilter,
    group: parsed.group,
    qos: o.qos,
    noLocal: o.noLocal,
    retainAsPublished: o.retainAsPublished,
    retainHandling: o.retainHandling,
    subscriptionId: o.subscriptionId,
    receive: undefined,
  };
}
