/**
 * An application message as the broker routes it: one object per PUBLISH received, shared by every
 * delivery (deliveries differ only in QoS, retain flag, packet id, subscription ids and topic alias).
 */
import type { IPublishPacket, QoS, UserProperties } from 'mqtt-packet';
import type { StoredMessage } from './persistence.js';

/** MQTT 5 PUBLISH properties forwarded unaltered to subscribers ([MQTT-3.3.2-4], [MQTT-3.3.2-15..20]). */
export interface MessageProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: UserProperties;
}

export interface Message {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly properties: MessageProperties | undefined;
  /** Absolute expiry (ms since epoch) from the Message Expiry Interval; undefined = never. */
  readonly expiresAt: number | undefined;
  /** Client id of the publishing connection, for No Local ([MQTT-3.8.3-3]); undefined for the server's own. */
  readonly senderId: string | undefined;
  /** Wire-form caches, filled by the first encode and shared by every later one. */
  topicBytes?: Buffer;
  propertyBytes?: Buffer;
}

/** The properties of an incoming PUBLISH that travel with the message. */
export function messageProperties(p: IPublishPacket['properties']): MessageProperties | undefined {
  if (p === undefined) return undefined;
  let out: MessageProperties | undefined;
  if (p.payloadFormatIndicator !== undefined) (out ??= {}).payloadFormatIndicator = p.payloadFormatIndicator;
  if (p.contentType !== undefined) (out ??= {}).contentType = p.contentType;
  if (p.responseTopic !== undefined) (out ??= {}).responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) (out ??= {}).correlationData = p.correlationData;
  if (p.userProperties !== undefined) (out ??= {}).userProperties = p.userProperties;
  return out;
}

/** Seconds left before `m` expires at `now` (rounded up, at least 1), or undefined if it never does. */
export function remainingExpiryS(m: Message, now: number): number | undefined {
  if (m.expiresAt === undefined) return undefined;
  return Math.max(1, Math.ceil((m.expiresAt - now) / 1000));
}

export function isExpired(m: Message, now: number): boolean {
  return m.expiresAt !== undefined && m.expiresAt <= now;
}

export function toStored(m: Message, qos: QoS = m.qos, retain = m.retain): StoredMessage {
  const s: StoredMessage = { topic: m.topic, payload: m.payload, qos, retain };
  if (m.properties !== undefined) s.properties = { ...m.properties };
  if (m.expiresAt !== undefined) s.expiresAt = m.expiresAt;
  return s;
}

export function fromStored(s: StoredMessage, senderId?: string): Message {
  return {
    topic: s.topic,
    payload: s.payload,
    qos: s.qos,
    retain: s.retain,
    properties: s.properties as MessageProperties | undefined,
    expiresAt: s.expiresAt,
    senderId,
  };
}
