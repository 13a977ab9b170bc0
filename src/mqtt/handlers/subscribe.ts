/**
 * SUBSCRIBE (3.1.1 §3.8, 5.0 §3.8): each filter is checked, authorized and added (or replaces the
 * client's subscription with the same filter, [MQTT-3.8.4-3]); SUBACK carries one code per filter
 * ([MQTT-3.8.4-6]); retained messages follow, per Retain Handling.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ISubackPacket, ISubscribePacket, QoS } from 'mqtt-packet';
import { topicLimitProblem } from '../../core/topic-limits.js';
import type { Channel } from '../channel.js';
import { malformed, protocolError } from '../errors.js';
import { RC } from '../reason-codes.js';
import type { Session } from '../session.js';
import { receiveCheckFor } from '../receive-check.js';
import { createSubscription, parseFilter, type Subscription } from '../subscription.js';
import type { RetainedSource } from '../retained-source.js';

/** How often a replay of retained messages read from persistence looks whether the client has room for the next. */
const PACE_MS = 10;
/**
 * Unacknowledged messages a session may have before the next retained message is read from persistence:
 * each in flight holds its payload until acknowledged, and these are the large ones (1 MB each, 100 in flight was 100 MB).
 */
const REPLAY_INFLIGHT = 4;

/** 3.1.1 SUBACK failure code (3.1.1 §3.9.3). */
const FAILURE_V3 = 0x80;

export function handleSubscribe(ch: Channel, p: ISubscribePacket): void {
  const { ctx } = ch;
  const v5 = ch.version === 5;
  const session = ch.session!;
  const id = p.messageId ?? 0;
  if (id === 0) throw malformed('packet identifier 0');
  // [MQTT-3.8.3-3] at least one topic filter.
  if (p.subscriptions.length === 0) throw protocolError('SUBSCRIBE without a topic filter');
  const subscriptionId = p.properties?.subscriptionIdentifier;
  // 5.0 §3.8.2.1.2: 0 is a Protocol Error.
  if (subscriptionId === 0) throw protocolError('Subscription Identifier 0');

  const codes: number[] = [];
  const fresh: Array<{ sub: Subscription; isNew: boolean }> = [];
  for (const s of p.subscriptions) {
    const parsed = parseFilter(s.topic);
    // 5.0 §3.9.3: 0x8F for a filter the server does not accept, here one over its topic limits.
    if ('problem' in parsed || topicLimitProblem(parsed.topicFilter, ctx.topicLimits) !== null) {
      codes.push(v5 ? RC.TOPIC_FILTER_INVALID : FAILURE_V3);
      continue;
    }
    if (parsed.group !== undefined) {
      if (!ctx.options.sharedSubscriptionAvailable) {
        codes.push(v5 ? RC.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED : FAILURE_V3);
        continue;
      }
      // [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error.
      if (s.nl === true) throw protocolError('No Local on a shared subscription');
    }
    // A filter only some of whose topics are allowed is granted; each message is then checked (receive-check.ts).
    const decision = ctx.hooks.authorizeSubscribe(ch.principal, s.topic, ch.clientId);
    if (decision === false) {
      codes.push(v5 ? RC.NOT_AUTHORIZED : FAILURE_V3);
      continue;
    }
    const options = { qos: s.qos as QoS, noLocal: s.nl === true, retainAsPublished: s.rap === true, retainHandling: (s.rh ?? 0) as 0 | 1 | 2, subscriptionId };
    const existing = session.subscriptions.get(s.topic);
    if (existing === undefined && session.subscriptions.size >= ctx.options.maxSubscriptionsPerClient) {
      codes.push(v5 ? RC.QUOTA_EXCEEDED : FAILURE_V3);
      continue;
    }
    const receive = receiveCheckFor(decision, ctx.hooks, ch.principal, ch.clientId);
    if (existing !== undefined) {
      Object.assign(existing, options);
      existing.receive = receive;
      fresh.push({ sub: existing, isNew: false });
    } else {
      const sub = createSubscription(session, s.topic, parsed, options);
      sub.receive = receive;
      session.addSubscription(sub);
      ctx.router.add(sub);
      fresh.push({ sub, isNew: true });
    }
    codes.push(options.qos);
  }

  const suback: ISubackPacket = { cmd: 'suback', messageId: id, granted: codes };
  ch.ackAfter(ctx.saveSession(session), () => suback, () => sendRetained(ch, fresh));
}

/** Retained messages for new subscriptions (3.1.1 [MQTT-3.3.1-6], 5.0 §3.3.1.3 Retain Handling), sent with RETAIN 1 ([MQTT-3.3.1-8] 3.1.1). */
function sendRetained(ch: Channel, subs: Array<{ sub: Subscription; isNew: boolean }>): void {
  const { ctx } = ch;
  if (ctx.retained.size === 0 && ctx.shared === undefined) return;
  const now = ctx.now();
  // Those kept in persistence only are read one after another, each once the client has room for it,
  // so a subscription matching many large ones does not bring them all into memory at once.
  let reads: Promise<void> | undefined;
  for (const { sub, isNew } of subs) {
    // Not for shared subscriptions (5.0 §4.8.2); Retain Handling 1: only for a new one; 2: never.
    if (sub.group !== undefined || sub.retainHandling === 2 || (sub.retainHandling === 1 && !isNew)) continue;
    const ids = sub.subscriptionId === undefined ? undefined : [sub.subscriptionId];
    for (const e of ctx.retained.match(sub.topicFilter, now)) {
      if (sub.receive !== undefined && !sub.receive.allows(e.topic)) continue;
      if (e.message !== undefined) {
        void sub.session.deliver(e.message, Math.min(e.qos, sub.qos) as QoS, true, ids);
        continue;
      }
      reads = (reads ?? Promise.resolve()).then(async () => {
        await room(sub.session);
        const m = await ctx.loadRetained(e);
        // Replaced meanwhile: the new one went to this subscription as it was published. Unsubscribed: not wanted.
        if (m === undefined || ctx.retained.get(e.topic) !== e || sub.session.subscriptions.get(sub.filter) !== sub) return;
        void sub.session.deliver(m, Math.min(m.qos, sub.qos) as QoS, true, ids);
      });
    }
    if (ctx.shared !== undefined) {
      const shared = ctx.shared;
      reads = (reads ?? Promise.resolve()).then(() => sendShared(ch, shared, sub, ids, now));
    }
  }
}

/**
 * The retained messages of the shared database (PostgreSQL) for `sub`, a page read only once the
 * client has taken the previous one: a subscription to `#` over a million holds one page at a time.
 */
async function sendShared(ch: Channel, shared: RetainedSource, sub: Subscription, ids: number[] | undefined, now: number): Promise<void> {
  const session = sub.session;
  session.replays++;
  const live = (session.liveDuringReplay ??= new Set());
  try {
    for await (const m of shared.matching(sub.topicFilter, now)) {
      // Unsubscribed (or replaced by a new SUBSCRIBE, which sends its own): the rest is not wanted.
      // Gone with its connection: nothing would keep them.
      if (sub.session.subscriptions.get(sub.filter) !== sub || (!sub.session.connected && !sub.session.persistent)) return;
      if (sub.receive !== undefined && !sub.receive.allows(m.topic)) continue;
      // Stored under larger topic limits (or before them): never delivered, as the trie skips them at start.
      if (topicLimitProblem(m.topic, ch.ctx.topicLimits) !== null) continue;
      await room(sub.session);
      // A newer message on the topic went to the session live while this page was read: it is the value.
      if (live.has(m.topic)) continue;
      void sub.session.deliver(m, Math.min(m.qos, sub.qos) as QoS, true, ids);
    }
  } catch (err) {
    ch.ctx.hooks.onError(err, 'persistence: read retained messages');
  } finally {
    if (--session.replays === 0) session.liveDuringReplay = undefined;
  }
}

/** Resolves once `session` can send a message at once with few in flight, or has no connection to wait for. */
async function room(session: Session): Promise<void> {
  while (session.connected && !(session.readyForDelivery && session.outbox.inflight < REPLAY_INFLIGHT)) await sleep(PACE_MS);
}
