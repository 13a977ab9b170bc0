/**
 * PUBREL from a client (3.1.1 §3.6, 5.0 §3.6): the QoS 2 packet id is released and PUBCOMP sent
 * ([MQTT-4.3.3-11]); from now on a PUBLISH with that id is a new message.
 */
import type { IPubrelPacket } from 'mqtt-packet';
import type { Channel } from '../channel.js';
import { RC } from '../reason-codes.js';

export function handlePubrel(ch: Channel, p: IPubrelPacket): void {
  const { ctx } = ch;
  const session = ch.session!;
  const id = p.messageId ?? 0;
  const known = session.incomingQos2?.delete(id) === true;
  const persistence = ctx.persistence;
  let stored: Promise<void> | undefined;
  if (known && session.persistent && persistence !== undefined) {
    stored = ctx.track(persistence.removeIncomingQos2(session.clientId, id), 'release a QoS 2 packet id').then(() => undefined);
  }
  ch.ackAfter(stored, () => {
    if (ch.qos2Here?.delete(id) === true) ch.incomingInflight--;
    // 5.0 §3.7.2.1: 0x92 when the packet id was not held.
    return { cmd: 'pubcomp', messageId: id, ...(ch.version === 5 ? { reasonCode: known ? RC.SUCCESS : RC.PACKET_IDENTIFIER_NOT_FOUND } : {}) };
  });
}
