/**
 * 5.0 §4.8.2: a shared subscription's message that a member will not acknowledge, because its
 * connection ended, may go to another member. Here it does: a QoS 1 message without PUBACK, a QoS 2
 * one without PUBREC (one whose PUBREC came is delivered and stays), and what was queued for the
 * member, go to another member of the same group as new deliveries (DUP 0).
 */
import type { QoS } from 'mqtt-packet';
import type { Outgoing } from './outbox.js';
import type { Delivery, Router } from './router.js';
import type { Session } from './session.js';

/** Still to be delivered: picked from a shared group, and not past PUBREC. */
function movable(o: Outgoing): boolean {
  return o.group !== undefined && !o.released;
}

function deliverTo(d: Delivery, o: Outgoing): Promise<void> | undefined {
  const m = o.message;
  return d.session.deliver(m, Math.min(m.qos, d.qos) as QoS, m.retain && d.retainAsPublished, d.subscriptionIds, o.group);
}

/**
 * The session ended, its outbox cleared into `pending`: each shared message goes to another member,
 * connected or not (an offline one that outlives its connection queues it). With no other member it
 * ends with the session, as it would with a single subscriber.
 */
export function redeliverEnded(router: Router, s: Session, pending: Outgoing[]): void {
  for (const o of pending) {
    if (!movable(o)) continue;
    const d = router.redeliveryTarget(o.group!, s, o.message.topic);
    if (d !== undefined) void deliverTo(d, o);
  }
}

/**
 * The connection of a session that outlives it ended: each shared message goes to a connected member
 * of its group; with none connected it stays here, sent again when the session resumes (nothing
 * acknowledged to its publisher is lost).
 */
export function redeliverOffline(router: Router, s: Session): void {
  const moved = s.outbox.takeWhere((o) => {
    if (!movable(o)) return undefined;
    const d = router.redeliveryTarget(o.group!, s, o.message.topic);
    return d?.session.connected === true ? d : undefined;
  });
  for (const { o, to } of moved) {
    const stored = deliverTo(to, o);
    // The old copy goes once the new one is stored: a restart in between finds one or both, never none.
    if (stored === undefined) s.outbox.discard(o);
    else void stored.then(() => s.outbox.discard(o));
  }
}
