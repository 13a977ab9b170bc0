/** PUBACK from a client (3.1.1 §3.4, 5.0 §3.4): a QoS 1 delivery is complete; the window moves on. */
import type { IPubackPacket } from 'mqtt-packet';
import type { Channel } from '../channel.js';

export function handlePuback(ch: Channel, p: IPubackPacket): void {
  const session = ch.session!;
  // [MQTT-4.3.2-?] an unknown packet id is ignored: it may be a late duplicate.
  if (session.outbox.puback(p.messageId ?? 0)) session.outbox.pump(ch);
}
