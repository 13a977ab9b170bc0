/**
 * PUBLISH from a client (3.1.1 §3.3, 5.0 §3.3): topic (or alias), checks, authorization, routing, then
 * PUBACK (QoS 1) or PUBREC (QoS 2) once every persistent copy is stored (4.3.2, 4.3.3), in a cluster
 * also the other nodes' copies (confirmed by them).
 */
import { isUtf8 } from 'node:buffer';
import type { IPublishPacket } from 'mqtt-packet';
import { topicLimitProblem } from '../../core/topic-limits.js';
import { validateTopicName } from '../../core/topic-tree.js';
import type { Channel } from '../channel.js';
import { MqttError, malformed, protocolError } from '../errors.js';
import { messageProperties, type Message } from '../message.js';
import { RC } from '../reason-codes.js';

/** Reason String of a PUBREC 0x80 for a QoS 2 message another node did not confirm. */
const NOT_FORWARDED = 'the message could not be forwarded to another node';

export function handlePublish(ch: Channel, p: IPublishPacket): void {
  const { ctx } = ch;
  const { options, stats } = ctx;
  const v5 = ch.version === 5;
  const qos = p.qos;
  const id = p.messageId ?? 0;
  // [MQTT-3.3.1-2] DUP is 0 on QoS 0; [MQTT-2.2.1-3] 5.0 / [MQTT-2.3.1-1] 3.1.1 a non-zero packet id otherwise.
  if (qos === 0 && p.dup) throw malformed('DUP set on a QoS 0 PUBLISH');
  if (qos > 0 && id === 0) throw malformed('packet identifier 0');
  const props = p.properties;
  // [MQTT-3.3.4-6] a Subscription Identifier is for the server to send, not the client.
  if (props?.subscriptionIdentifier !== undefined) throw protocolError('Subscription Identifier in a PUBLISH from a client');

  let topic = p.topic;
  const alias = props?.topicAlias;
  if (alias !== undefined) {
    // [MQTT-3.3.2-8] 0 is not an alias; [MQTT-3.3.2-9/10] nor is anything above our Topic Alias Maximum.
    if (alias === 0 || alias > options.topicAliasMaximum) throw new MqttError(RC.TOPIC_ALIAS_INVALID, `topic alias ${alias} out of range`);
    if (topic === '') {
      const known = ch.aliasesIn?.get(alias);
      if (known === undefined) throw protocolError(`topic alias ${alias} was never set`);
      topic = known;
    }
  } else if (topic === '') {
    throw v5 ? protocolError('empty topic name without a topic alias') : malformed('empty topic name'); // [MQTT-4.7.3-1]
  }
  const problem = validateTopicName(topic);
  // [MQTT-3.3.2-2] no wildcards in a topic name.
  if (problem !== null) throw new MqttError(RC.TOPIC_NAME_INVALID, `topic ${problem}`);
  const overLimit = topicLimitProblem(topic, ctx.topicLimits);
  // A well-formed name over the server's limits: 5.0 refuses it with 0x90 "not accepted by this
  // Server" in PUBACK/PUBREC (§3.4.2.1, §3.5.2.1), or, at QoS 0 where no acknowledgement can carry it,
  // with DISCONNECT 0x90 (§3.14.2.1, §4.13); 3.1.1 can only close the connection.
  if (overLimit !== null && (!v5 || qos === 0)) throw new MqttError(RC.TOPIC_NAME_INVALID, `topic ${overLimit}`);
  if (alias !== undefined && p.topic !== '' && overLimit === null) (ch.aliasesIn ??= new Map()).set(alias, topic);
  // 5.0 §3.3.1.3: a retained PUBLISH when Retain Available is 0 ends the connection with 0x9A.
  if (p.retain && !options.retainAvailable) throw new MqttError(RC.RETAIN_NOT_SUPPORTED);

  const payload = p.payload as Buffer;
  stats.messagesIn[qos]++;
  stats.bytesIn[qos] += payload.length;
  const session = ch.session!;

  if (qos === 2 && session.incomingQos2?.has(id) === true) {
    // [MQTT-4.3.3-9] 5.0: a PUBLISH again before PUBREL is not delivered again; PUBREC again. The
    // first may still wait for another node's confirmation (acknowledgements keep their order, so this
    // answer is made after the first's): if that failed the packet id was released, and the copy
    // hears the same failure, never a success for a message that was not acknowledged.
    ch.ackAfter(undefined, () =>
      session.incomingQos2?.has(id) === true || !v5
        ? { cmd: 'pubrec', messageId: id }
        : { cmd: 'pubrec', messageId: id, reasonCode: RC.UNSPECIFIED_ERROR, properties: { reasonString: NOT_FORWARDED } });
    return;
  }
  // 5.0 §3.3.4 / §4.9: more unacknowledged QoS 1/2 than our Receive Maximum ends the connection.
  if (qos > 0 && ++ch.incomingInflight > options.receiveMaximum) throw new MqttError(RC.RECEIVE_MAXIMUM_EXCEEDED);

  let refusal: number | undefined;
  let refusalReason: string | undefined;
  if (overLimit !== null) refusal = RC.TOPIC_NAME_INVALID;
  // 5.0 §3.3.2.3.2: the server may check a payload marked as UTF-8.
  else if (v5 && props?.payloadFormatIndicator === true && !isUtf8(payload)) refusal = RC.PAYLOAD_FORMAT_INVALID;
  // `$SYS/` belongs to the broker; the hook decides the rest.
  else if (topic.startsWith('$SYS') || !ctx.hooks.authorizePublish(ch.principal, topic, ch.clientId)) refusal = RC.NOT_AUTHORIZED;
  // Cluster: a node that cannot reach Redis cannot route; it says so rather than lose the message.
  else if (ctx.routing !== undefined && (refusalReason = ctx.routing.unavailable()) !== undefined) {
    // 3.1.1 has no refusal: the connection is closed, so the client publishes again once reconnected.
    if (!v5 && qos > 0) throw new MqttError(RC.UNSPECIFIED_ERROR, refusalReason);
    refusal = RC.UNSPECIFIED_ERROR;
  }

  let m: Message | undefined;
  if (refusal === undefined) {
    m = {
      topic,
      payload,
      qos,
      retain: p.retain,
      properties: v5 ? messageProperties(props) : undefined,
      expiresAt: props?.messageExpiryInterval === undefined ? undefined : ctx.now() + props.messageExpiryInterval * 1000,
      senderId: ch.clientId,
    };
    if (m.retain && !ctx.admitRetained(m, ch.principal)) {
      // 5.0 §3.4.2.1 / §3.5.2.1: 0x97 Quota exceeded, and the message is not published. Where no
      // refusal can be said (QoS 0, 3.1.1) it is published without being retained, as Mosquitto does
      // past its retained limits: subscribers still get it live.
      if (v5 && qos > 0) refusal = RC.QUOTA_EXCEEDED;
      else m = { ...m, retain: false };
    }
  }

  if (refusal !== undefined) {
    if (qos === 0) {
      if (v5 && refusal === RC.PAYLOAD_FORMAT_INVALID) throw new MqttError(refusal, 'payload is not UTF-8');
      return;
    }
    if (v5) {
      // 5.0 §3.4.2.1 / §3.5.2.1: the failure code ends the exchange (no PUBREL follows a failed PUBREC).
      ch.ackAfter(undefined, () => {
        ch.incomingInflight--;
        return { cmd: qos === 1 ? 'puback' : 'pubrec', messageId: id, reasonCode: refusal, ...(refusalReason === undefined ? {} : { properties: { reasonString: refusalReason } }) };
      });
      return;
    }
    // 3.1.1 cannot say no: the message is acknowledged and dropped.
  }

  let deliveries = 0;
  let stored: Promise<void> | undefined;
  let sent: Promise<boolean> | undefined;
  let retained: Promise<boolean> | undefined;
  if (m !== undefined && refusal === undefined) ({ deliveries, stored, sent, retained } = ctx.route(m, ch.principal));
  if (qos === 0) return;
  // 5.0 §3.4.2.1: 0x10 tells the publisher nobody was subscribed.
  let reasonCode: number = v5 && deliveries === 0 && refusal === undefined ? RC.NO_MATCHING_SUBSCRIBERS : RC.SUCCESS;
  if (sent !== undefined) {
    // Cluster: acknowledged once every node forwarded to confirmed it stored the message. One that did
    // not (dead, unreachable, too slow) is a failure: 5.0 gets 0x80 (nothing is claimed delivered);
    // 3.1.1 has no negative acknowledgement, so the connection closes unacknowledged and the client
    // publishes again once reconnected.
    const forwarded = sent.then((ok) => {
      if (ok) return;
      if (v5) reasonCode = RC.UNSPECIFIED_ERROR;
      else ch.disconnect(RC.UNSPECIFIED_ERROR, NOT_FORWARDED);
    });
    stored = stored === undefined ? forwarded : Promise.all([stored, forwarded]).then(() => undefined);
  }
  if (retained !== undefined && v5) {
    // Shared retained messages (PostgreSQL): the quotas are checked in the write, after the message
    // went to its subscribers, so a refusal says "not retained" (0x97) rather than "not published".
    const checked = retained.then((ok) => {
      if (!ok) reasonCode = RC.QUOTA_EXCEEDED;
    });
    stored = stored === undefined ? checked : Promise.all([stored, checked]).then(() => undefined);
  }
  if (qos === 1) {
    // The common case: nothing to wait for, so no closure and no packet object.
    if (stored === undefined && ch.acksInOrder) {
      ch.incomingInflight--;
      ch.writeAck('puback', id, v5 ? reasonCode : 0);
      return;
    }
    ch.ackAfter(stored, () => {
      ch.incomingInflight--;
      return { cmd: 'puback', messageId: id, ...(v5 ? { reasonCode } : {}) };
    });
    return;
  }
  // QoS 2, method B of 4.3.3: the message is delivered now; the packet id is held until PUBREL.
  (session.incomingQos2 ??= new Set()).add(id);
  (ch.qos2Here ??= new Set()).add(id);
  const persistence = ctx.persistence;
  if (session.persistent && persistence !== undefined) {
    const held = ctx.track(persistence.addIncomingQos2(session.clientId, id), 'persist a QoS 2 packet id');
    stored = stored === undefined ? held.then(() => undefined) : Promise.all([stored, held]).then(() => undefined);
  }
  if (sent !== undefined) {
    // Not forwarded: the packet id is not held, or the same id again (5.0: a new message after the
    // failed PUBREC; 3.1.1: the same one resent after the close) would be taken for a duplicate and
    // not delivered.
    stored = Promise.all([stored, sent]).then(async ([, ok]) => {
      if (ok) return;
      session.incomingQos2?.delete(id);
      if (ch.qos2Here?.delete(id) === true) ch.incomingInflight--;
      if (session.persistent && persistence !== undefined) await ctx.track(persistence.removeIncomingQos2(session.clientId, id), 'release a QoS 2 packet id');
    });
  }
  ch.ackAfter(stored, () => ({ cmd: 'pubrec', messageId: id, ...(v5 ? { reasonCode } : {}) }));
}
