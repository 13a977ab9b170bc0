/**
 * CONNACK (3.1.1 §3.2, 5.0 §3.2): accepting a connection onto its session, or refusing it.
 */
import type { IConnackPacket } from 'mqtt-packet';
import type { Channel } from '../channel.js';
import { PROTOCOL_MAX_PACKET_BYTES } from '../codec.js';
import { connackCodeV3, RC } from '../reason-codes.js';
import type { Session } from '../session.js';

/** What CONNECT settled, kept on the channel until CONNACK. */
export interface PendingConnect {
  clientId: string;
  /** The broker chose the client id ([MQTT-3.2.2-16]: told to a v5 client). */
  assigned: boolean;
  cleanStart: boolean;
  requestedExpiryS: number;
  expiryIntervalS: number;
  askedKeepaliveS: number;
  keepaliveS: number;
}

/** Refuses the CONNECT ([MQTT-3.2.2-6/7] session present 0; 3.1.1 [MQTT-3.2.2-5]) and closes. */
export function refuse(ch: Channel, reasonCode: number, reasonString?: string): void {
  if (ch.state === 'closed') return;
  if (ch.version === 5) {
    ch.send({ cmd: 'connack', sessionPresent: false, reasonCode, ...(reasonString !== undefined ? { properties: { reasonString } } : {}) });
  } else {
    ch.send({ cmd: 'connack', sessionPresent: false, returnCode: connackCodeV3(reasonCode) });
  }
  ch.close(false);
}

/** Authentication passed: opens the session and answers CONNACK. */
export async function openSession(ch: Channel, principal: string, auth?: { method: string; data: Buffer | undefined }): Promise<void> {
  const pending = ch.pending!;
  ch.principal = principal;
  const outcome = await ch.ctx.openSession(
    ch,
    { clientId: pending.clientId, principal, protocolVersion: ch.version, cleanStart: pending.cleanStart, expiryIntervalS: pending.expiryIntervalS },
    (session, present) => accept(ch, session, present, auth),
  );
  // The client id is another principal's: not this client's to use.
  if (outcome === 'refused') refuse(ch, RC.CLIENT_IDENTIFIER_NOT_VALID, 'client identifier in use by another principal');
  // 3.1.1 has no quota code: 0x97 goes out as 3 Server unavailable, a refusal that may succeed later
  // (once one of the owner's sessions ends or expires).
  else if (outcome === 'unavailable') refuse(ch, RC.SERVER_UNAVAILABLE, 'the cluster\'s session registry cannot be reached');
  else if (outcome === 'quota') refuse(ch, RC.QUOTA_EXCEEDED, `too many sessions for these credentials (at most ${ch.ctx.options.maxSessionsPerOwner} outlive their connection)`);
}

function accept(ch: Channel, session: Session, present: boolean, auth: { method: string; data: Buffer | undefined } | undefined): void {
  const pending = ch.pending!;
  ch.pending = undefined;
  ch.auth = undefined;
  ch.session = session;
  session.channel = ch;
  ch.state = 'connected';
  ch.keepaliveS = pending.keepaliveS;
  ch.requestedExpiryS = pending.requestedExpiryS;
  // [MQTT-3.2.2-1..3] 3.1.1 / [MQTT-3.2.2-2/3] 5.0: session present only when a session was resumed.
  const packet: IConnackPacket = { cmd: 'connack', sessionPresent: present };
  if (ch.version === 5) {
    packet.reasonCode = RC.SUCCESS;
    packet.properties = connackProperties(ch, pending, auth);
  } else {
    packet.returnCode = 0;
  }
  ch.send(packet);
  ch.startKeepalive(pending.keepaliveS);
  // [MQTT-4.4.0-1] unacknowledged PUBLISH and PUBREL again, before anything new.
  if (present) session.outbox.resend(ch);
  else session.outbox.pump(ch);
}

function connackProperties(ch: Channel, pending: PendingConnect, auth: { method: string; data: Buffer | undefined } | undefined): IConnackPacket['properties'] {
  const o = ch.ctx.options;
  const props: NonNullable<IConnackPacket['properties']> = {};
  // 5.0 §3.2.2.3.2: told when the server grants another interval than asked.
  if (pending.expiryIntervalS !== pending.requestedExpiryS) props.sessionExpiryInterval = pending.expiryIntervalS;
  if (o.receiveMaximum < 65_535) props.receiveMaximum = o.receiveMaximum;
  if (o.maxPacketBytes < PROTOCOL_MAX_PACKET_BYTES) props.maximumPacketSize = o.maxPacketBytes;
  if (!o.retainAvailable) props.retainAvailable = false;
  if (pending.assigned) props.assignedClientIdentifier = pending.clientId;
  if (o.topicAliasMaximum > 0) props.topicAliasMaximum = o.topicAliasMaximum;
  if (!o.sharedSubscriptionAvailable) props.sharedSubscriptionAvailable = false;
  // [MQTT-3.2.2-21/22] Server Keep Alive: the client must use it.
  if (pending.keepaliveS !== pending.askedKeepaliveS) props.serverKeepAlive = pending.keepaliveS;
  if (auth !== undefined) {
    props.authenticationMethod = auth.method;
    if (auth.data !== undefined) props.authenticationData = auth.data;
  }
  return props;
}
