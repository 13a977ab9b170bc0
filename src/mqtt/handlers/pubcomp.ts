/** PUBCOMP from a client (3.1.1 §3.7, 5.0 §3.7): a QoS 2 delivery is complete; the window moves on. */
import type { IPubcompPacket } from 'mqtt-packet';
import type { Channel } from '../channel.js';

export function handlePubcomp(ch: Channel, p: IPubcompPacket): void {
  const session = ch.session!;
  if (session.outbox.pubcomp(p.messageId ?? 0)) session.outbox.pump(ch);
}
