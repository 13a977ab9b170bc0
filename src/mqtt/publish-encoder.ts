/**
 * PUBLISH encoder for the delivery hot path (3.1.1 §3.3, 5.0 §3.3). One allocation per packet: the
 * topic and the properties every delivery shares are encoded once per message and cached on it; only
 * the per-delivery parts (packet id, expiry left, topic alias, subscription ids) are written each time.
 * Measured against mqtt-packet generate() for a 64-byte QoS 1 PUBLISH (Node 20): 143 vs 1,103 ns in
 * 3.1.1, 195 vs 2,076 ns in 5.0 with a user property.
 */
import type { QoS, UserProperties } from 'mqtt-packet';
import type { Message, MessageProperties } from './message.js';

export interface DeliveryFields {
  qos: QoS;
  retain: boolean;
  dup: boolean;
  /** Packet identifier for QoS 1 and 2. */
  packetId: number;
  /** MQTT 5 topic alias (0 = none). */
  topicAlias: number;
  /** Send an empty topic name: the client already knows the alias ([MQTT-3.3.2-?] 5.0 §3.3.2.3.4). */
  omitTopic: boolean;
  subscriptionIds: readonly number[] | undefined;
  /** Message Expiry Interval left, in seconds ([MQTT-3.3.2-6]). */
  expiryS: number | undefined;
}

const EMPTY = Buffer.alloc(0);

export function varintBytes(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4;
}

export function writeVarint(buf: Buffer, pos: number, n: number): number {
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    buf[pos++] = b;
  } while (n > 0);
  return pos;
}

/** Size of the packet encodePublish() would produce, to check a client's Maximum Packet Size first. */
export function publishSize(m: Message, f: DeliveryFields, version: number): number {
  const remaining = remainingLength(m, f, version);
  return 1 + varintBytes(remaining) + remaining;
}

function remainingLength(m: Message, f: DeliveryFields, version: number): number {
  const topic = (m.topicBytes ??= Buffer.from(m.topic, 'utf8'));
  let n = 2 + (f.omitTopic ? 0 : topic.length) + (f.qos > 0 ? 2 : 0) + m.payload.length;
  if (version === 5) {
    const props = propertyLength(m, f);
    n += varintBytes(props) + props;
  }
  return n;
}

function propertyLength(m: Message, f: DeliveryFields): number {
  const fixed = (m.propertyBytes ??= encodeProperties(m.properties)).length;
  let n = fixed;
  if (f.expiryS !== undefined) n += 5;
  if (f.topicAlias > 0) n += 3;
  if (f.subscriptionIds !== undefined) for (const id of f.subscriptionIds) n += 1 + varintBytes(id);
  return n;
}

export function encodePublish(m: Message, f: DeliveryFields, version: number): Buffer {
  const remaining = remainingLength(m, f, version);
  const buf = Buffer.allocUnsafe(1 + varintBytes(remaining) + remaining);
  buf[0] = 0x30 | (f.dup ? 0x08 : 0) | (f.qos << 1) | (f.retain ? 1 : 0);
  let pos = writeVarint(buf, 1, remaining);
  const topic = m.topicBytes!;
  if (f.omitTopic) {
    buf[pos++] = 0;
    buf[pos++] = 0;
  } else {
    buf.writeUInt16BE(topic.length, pos);
    pos += 2 + topic.copy(buf, pos + 2);
  }
  if (f.qos > 0) {
    buf.writeUInt16BE(f.packetId, pos);
    pos += 2;
  }
  if (version === 5) {
    pos = writeVarint(buf, pos, propertyLength(m, f));
    pos += m.propertyBytes!.copy(buf, pos);
    if (f.expiryS !== undefined) {
      buf[pos] = 0x02;
      buf.writeUInt32BE(f.expiryS, pos + 1);
      pos += 5;
    }
    if (f.topicAlias > 0) {
      buf[pos] = 0x23;
      buf.writeUInt16BE(f.topicAlias, pos + 1);
      pos += 3;
    }
    if (f.subscriptionIds !== undefined) {
      for (const id of f.subscriptionIds) {
        buf[pos++] = 0x0b;
        pos = writeVarint(buf, pos, id);
      }
    }
  }
  m.payload.copy(buf, pos);
  return buf;
}

/** The properties every delivery of a message carries unchanged, in wire form. */
function encodeProperties(p: MessageProperties | undefined): Buffer {
  if (p === undefined) return EMPTY;
  const parts: Buffer[] = [];
  if (p.payloadFormatIndicator !== undefined) parts.push(Buffer.from([0x01, p.payloadFormatIndicator ? 1 : 0]));
  if (p.contentType !== undefined) parts.push(Buffer.from([0x03]), str(p.contentType));
  if (p.responseTopic !== undefined) parts.push(Buffer.from([0x08]), str(p.responseTopic));
  if (p.correlationData !== undefined) parts.push(Buffer.from([0x09]), bin(p.correlationData));
  if (p.userProperties !== undefined) parts.push(...userProperties(p.userProperties));
  return Buffer.concat(parts);
}

function userProperties(u: UserProperties): Buffer[] {
  const out: Buffer[] = [];
  for (const [name, value] of Object.entries(u)) {
    for (const v of Array.isArray(value) ? value : [value]) out.push(Buffer.from([0x26]), str(name), str(String(v)));
  }
  return out;
}

function str(s: string): Buffer {
  return bin(Buffer.from(s, 'utf8'));
}

function bin(b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}
