/**
 * PUBREC from a client (3.1.1 §3.5, 5.0 §3.5): answered with PUBREL ([MQTT-4.3.3-4]) once the store
 * knows the message is released (Outbox.pubrec), in the order the PUBRECs came ([MQTT-4.6.0-3]).
 */
import type { IPubrecPacket } from 'mqtt-packet';
import type { Channel } from '../channel.js';
import { RC } from '../reason-codes.js';

export function handlePubrec(ch: Channel, p: IPubrecPacket): void {
  const session = ch.session!;
  const id = p.messageId ?? 0;
  const outcome = session.outbox.pubrec(id, p.reasonCode ?? 0);
  if (outcome === 'release') ch.ackAfter(session.outbox.releasedWrite(id), () => ({ cmd: 'pubrel', messageId: id }));
  // 5.0 §3.6.2.1: a PUBREC for a packet id not in flight gets PUBREL 0x92.
  else if (outcome === 'unknown') ch.writePubrel(id, RC.PACKET_IDENTIFIER_NOT_FOUND);
  else session.outbox.pump(ch);
}
