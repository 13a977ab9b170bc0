/**
 * CONNECT (3.1.1 §3.1, 5.0 §3.1): protocol level, client identifier, keep alive, session expiry, will,
 * then authentication (plain here, enhanced in auth.ts) and the session (connack.ts).
 */
import { randomUUID } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import type { IConnectPacket } from 'mqtt-packet';
import { topicLimitProblem } from '../../core/topic-limits.js';
import { validateTopicName } from '../../core/topic-tree.js';
import type { Channel } from '../channel.js';
import { protocolError } from '../errors.js';
import { messageProperties } from '../message.js';
import { RC } from '../reason-codes.js';
import { TopicAliasesOut } from '../topic-alias.js';
import { startEnhancedAuth } from './auth.js';
import { refuse, openSession, type PendingConnect } from './connack.js';

export async function handleConnect(ch: Channel, p: IConnectPacket): Promise<void> {
  const { ctx } = ch;
  const { options } = ctx;
  ch.state = 'connecting';
  ch.version = p.protocolVersion ?? 4;
  const v5 = ch.version === 5;
  await ctx.ready;
  if (ch.closed) return;
  if (ctx.closing) return refuse(ch, RC.SERVER_SHUTTING_DOWN);
  if (options.maxConnections > 0 && ctx.connectedCount >= options.maxConnections) return refuse(ch, RC.QUOTA_EXCEEDED, 'too many connections');

  // Client identifier: 3.1.1 §3.1.3.1, 5.0 §3.1.3.1.
  let clientId = p.clientId;
  const assigned = clientId === '';
  if (assigned) {
    // [MQTT-3.1.3-8] 3.1.1: an empty id needs clean session 1; 3.1 requires an id.
    if (ch.version === 3 || (!v5 && !p.clean)) return refuse(ch, RC.CLIENT_IDENTIFIER_NOT_VALID, 'a client identifier is required');
    // [MQTT-3.1.3-6] a unique id, told to a v5 client as Assigned Client Identifier ([MQTT-3.2.2-16]).
    clientId = `${options.assignedClientIdPrefix}${randomUUID()}`;
  }
  ch.clientId = clientId;
  ch.username = p.username;

  // Keep alive: 5.0 §3.2.2.3.14 Server Keep Alive; 3.1.1 has no way to tell the client, so refuse.
  const asked = p.keepalive ?? 0;
  let keepaliveS = asked;
  if (v5) {
    if (options.serverKeepAliveS !== undefined) keepaliveS = options.serverKeepAliveS;
    else if (options.keepaliveMaxS > 0 && (asked === 0 || asked > options.keepaliveMaxS)) keepaliveS = options.keepaliveMaxS;
  } else if (options.keepaliveMaxS > 0 && (asked === 0 || asked > options.keepaliveMaxS)) {
    return refuse(ch, RC.CLIENT_IDENTIFIER_NOT_VALID, `keep alive must be 1 to ${options.keepaliveMaxS} s`);
  }

  const props = p.properties ?? {};
  if (v5) {
    // 5.0 §3.1.2.11.3/4: 0 is a Protocol Error for both.
    if (props.receiveMaximum === 0) throw protocolError('Receive Maximum 0');
    if (props.maximumPacketSize === 0) throw protocolError('Maximum Packet Size 0');
    if (props.receiveMaximum !== undefined) ch.clientReceiveMaximum = props.receiveMaximum;
    if (props.maximumPacketSize !== undefined) ch.clientMaxPacketBytes = props.maximumPacketSize;
    if (props.requestProblemInformation === false) ch.problemInformation = false;
    const aliases = Math.min(props.topicAliasMaximum ?? 0, options.topicAliasMaximumOut);
    if (aliases > 0) ch.aliasesOut = new TopicAliasesOut(aliases);
  }

  // Session expiry: 5.0 §3.1.2.11.2, capped by the server ([MQTT-3.2.2-?] told back in CONNACK);
  // 3.1.1 clean session 0 keeps the session, for as long as the server allows.
  const requestedExpiryS = v5 ? (props.sessionExpiryInterval ?? 0) : p.clean ? 0 : options.maxSessionExpiryS;
  const expiryIntervalS = Math.min(requestedExpiryS, options.maxSessionExpiryS);

  // Will: 3.1.1 §3.1.2.5, 5.0 §3.1.2.5 and §3.1.3.2.
  if (p.will !== undefined) {
    const w = p.will;
    // 5.0 §3.2.2.2: 0x90 for a will topic the server does not accept, here also one over its limits.
    const problem = validateTopicName(w.topic) ?? topicLimitProblem(w.topic, ctx.topicLimits);
    if (problem !== null) return refuse(ch, RC.TOPIC_NAME_INVALID, `will topic ${problem}`);
    if (w.retain === true && !options.retainAvailable) return refuse(ch, RC.RETAIN_NOT_SUPPORTED); // [MQTT-3.2.2-?] 5.0 §3.2.2.3.5
    const payload = typeof w.payload === 'string' ? Buffer.from(w.payload) : w.payload;
    const wp = w.properties;
    if (wp?.payloadFormatIndicator === true && !isUtf8(payload)) return refuse(ch, RC.PAYLOAD_FORMAT_INVALID, 'will payload is not UTF-8');
    ch.will = {
      message: { topic: w.topic, payload, qos: w.qos ?? 0, retain: w.retain === true, properties: v5 ? messageProperties(wp) : undefined, expiresAt: undefined, senderId: clientId },
      delayS: wp?.willDelayInterval ?? 0,
      expiryS: wp?.messageExpiryInterval,
    };
  }

  const pending: PendingConnect = { clientId, assigned, cleanStart: p.clean !== false, requestedExpiryS, expiryIntervalS, askedKeepaliveS: asked, keepaliveS };
  ch.pending = pending;

  if (props.authenticationMethod !== undefined) return startEnhancedAuth(ch, props.authenticationMethod, props.authenticationData);

  let result;
  try {
    result = await ctx.hooks.authenticate({ clientId, username: p.username, password: p.password, remoteAddress: ch.meta.remoteAddress, transport: ch.meta.transport, protocolVersion: ch.version });
  } catch (err) {
    ctx.hooks.onError(err, 'authenticate');
    return refuse(ch, RC.SERVER_UNAVAILABLE);
  }
  if (ch.closed) return;
  if ('reasonCode' in result) return refuse(ch, result.reasonCode, result.reasonString);
  if (result.credential !== undefined) ctx.holdCredential(ch, result.credential);
  return openSession(ch, result.principal);
}
