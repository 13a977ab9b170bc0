/**
 * 5.0 §4.8.2: a shared subscription's message that a member will not acknowledge, because its
 * connection ended, may go to another member. Here it does: a QoS 1 message without PUBACK, a QoS 2
 * one without PUBREC (one whose PUBREC came is delivered and stays), and what was queued for the
 * member, go to another member of the same group as new deliveries (DUP 0): a connected one on this
 * node, else (cluster) another node holding members of the group, which picks one.
 */
import type { QoS } from 'mqtt-packet';
import type { BrokerContext } from './context.js';
import type { Outgoing } from './outbox.js';
import type { Delivery } from './router.js';
import type { Session } from './session.js';

/** Where a message goes: a member here, or sent to another node (resolving false when Redis refused it). */
type Destination = { readonly local: Delivery } | { readonly sent: Promise<boolean> };

/** Still to be delivered: picked from a shared group, and not past PUBREC. */
function movable(o: Outgoing): boolean {
  return o.group !== undefined && !o.released;
}

function deliverTo(d: Delivery, o: Outgoing): Promise<void> | undefined {
  const m = o.message;
  return d.session.deliver(m, Math.min(m.qos, d.qos) as QoS, m.retain && d.retainAsPublished, d.subscriptionIds, o.group);
}

/** A connected member here, else another node with members; `offline` is told of an offline member here. */
function destination(ctx: BrokerContext, s: Session, o: Outgoing, offline?: (d: Delivery) => void): Destination | undefined {
  const group = o.group!;
  const d = ctx.router.redeliveryTarget(group, s, o.message.topic);
  if (d?.session.connected === true) return { local: d };
  const sent = ctx.routing?.redirect(o.message, group.shareFilter);
  if (sent !== undefined) return { sent };
  if (d !== undefined) offline?.(d);
  return undefined;
}

/**
 * The session ended, its outbox cleared into `pending`: each shared message goes to another member,
 * connected or not (an offline one that outlives its connection queues it). With no other member it
 * ends with the session, as it would with a single subscriber.
 */
export function redeliverEnded(ctx: BrokerContext, s: Session, pending: Outgoing[]): void {
  for (const o of pending) {
    if (!movable(o)) continue;
    const to = destination(ctx, s, o, (d) => void deliverTo(d, o));
    if (to !== undefined && 'local' in to) void deliverTo(to.local, o);
  }
}

/**
 * The connection of a session that outlives it ended: each shared message goes to a connected member
 * of its group or another node; with neither it stays here, sent again when the session resumes
 * (nothing acknowledged to its publisher is lost).
 */
export function redeliverOffline(ctx: BrokerContext, s: Session): void {
  const moved = s.outbox.takeWhere((o) => (movable(o) ? destination(ctx, s, o) : undefined));
  for (const { o, to } of moved) {
    if ('local' in to) discardOnceStored(s, o, deliverTo(to.local, o));
    else
      void to.sent.then((ok) => {
        // Redis refused it: back to this session's queue, for its next connection or another leave.
        discardOnceStored(s, o, ok ? undefined : s.deliver(o.message, o.qos, o.retain, o.subscriptionIds, o.group));
      });
  }
}

/** The old copy goes once the new one is stored: a restart in between finds one or both, never none. */
function discardOnceStored(s: Session, o: Outgoing, stored: Promise<void> | undefined): void {
  if (stored === undefined) s.outbox.discard(o);
  else void stored.then(() => s.outbox.discard(o));
}
