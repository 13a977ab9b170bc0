/**
 * The wills a node records in Redis for its clients (`mqtt:wills:<nodeId>`, one hash field per client
 * id), so that a surviving node can publish them when the node dies. Kept as bytes: a fixed header,
 * then length-prefixed topic, principal, origin node, properties and payload.
 */
import type { Will } from '../channel.js';
import type { Message, MessageProperties } from '../message.js';

export interface WillRecord {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  properties: MessageProperties | undefined;
  /** Will Delay Interval, seconds. */
  delayS: number;
  /** Message Expiry Interval of the will, seconds; undefined = none. */
  expiryS: number | undefined;
  /** The session's expiry interval when recorded: 0 = the will goes when the connection does. */
  sessionExpiryS: number;
  /** Set once the connection is gone: when the will is due (ms since epoch). */
  dueAt: number | undefined;
  /** Who publishes it (for the ACL), and the client id it is sent for. */
  principal: string;
  clientId: string;
  /** The node whose client it was (kept when another node takes the record over). */
  origin: string;
}

const VERSION = 1;
const NO_EXPIRY = 0xffff_ffff;

export function willRecord(clientId: string, principal: string, origin: string, will: Will, sessionExpiryS: number): WillRecord {
  const m = will.message;
  return { topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain, properties: m.properties, delayS: will.delayS, expiryS: will.expiryS, sessionExpiryS, dueAt: undefined, principal, clientId, origin };
}

/** The message to publish at `now` (its expiry counted from then). */
export function willMessage(r: WillRecord, now: number): Message {
  return { topic: r.topic, payload: r.payload, qos: r.qos, retain: r.retain, properties: r.properties, expiresAt: r.expiryS === undefined ? undefined : now + r.expiryS * 1000, senderId: r.clientId };
}

export function encodeWill(r: WillRecord): Buffer {
  // Buffers (correlation data) reach the replacer as Buffer#toJSON made them: kept as base64.
  const props = r.properties === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(r.properties, (_k, v: unknown) => (isBufferJson(v) ? { $b: Buffer.from(v.data).toString('base64') } : v)));
  const strings = [Buffer.from(r.topic), Buffer.from(r.principal), Buffer.from(r.clientId), Buffer.from(r.origin), props, r.payload];
  const head = Buffer.alloc(1 + 1 + 1 + 4 + 4 + 4 + 8);
  let o = head.writeUInt8(VERSION, 0);
  o = head.writeUInt8(r.qos, o);
  o = head.writeUInt8(r.retain ? 1 : 0, o);
  o = head.writeUInt32BE(r.delayS, o);
  o = head.writeUInt32BE(r.expiryS ?? NO_EXPIRY, o);
  o = head.writeUInt32BE(r.sessionExpiryS, o);
  head.writeDoubleBE(r.dueAt ?? -1, o);
  const parts: Buffer[] = [head];
  for (const s of strings) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(s.length, 0);
    parts.push(len, s);
  }
  return Buffer.concat(parts);
}

function isBufferJson(v: unknown): v is { type: 'Buffer'; data: number[] } {
  return typeof v === 'object' && v !== null && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data);
}

/** undefined for bytes this version did not write. */
export function decodeWill(b: Buffer): WillRecord | undefined {
  try {
    if (b.readUInt8(0) !== VERSION) return undefined;
    const qos = b.readUInt8(1) as 0 | 1 | 2;
    const retain = b.readUInt8(2) === 1;
    const delayS = b.readUInt32BE(3);
    const expiry = b.readUInt32BE(7);
    const sessionExpiryS = b.readUInt32BE(11);
    const due = b.readDoubleBE(15);
    let o = 23;
    const next = (): Buffer => {
      const n = b.readUInt32BE(o);
      const s = b.subarray(o + 4, o + 4 + n);
      if (s.length !== n) throw new RangeError('truncated will');
      o += 4 + n;
      return s;
    };
    const [topic, principal, clientId, origin, props, payload] = [next(), next(), next(), next(), next(), next()];
    const properties = props.length === 0 ? undefined : (JSON.parse(props.toString(), (_k, v: unknown) => (typeof v === 'object' && v !== null && '$b' in v ? Buffer.from((v as { $b: string }).$b, 'base64') : v)) as MessageProperties);
    return {
      topic: topic.toString(), payload: Buffer.from(payload), qos, retain, properties, delayS,
      expiryS: expiry === NO_EXPIRY ? undefined : expiry, sessionExpiryS, dueAt: due < 0 ? undefined : due,
      principal: principal.toString(), clientId: clientId.toString(), origin: origin.toString(),
    };
  } catch {
    return undefined;
  }
}

/**
 * When a will of a node that died at `deathAt` is due: its recorded due time if its connection had
 * already ended, else the Will Delay Interval after the death, or at once when the session ended with
 * the connection (5.0 §3.1.3.2.2: the delay, or the session's end if sooner).
 */
export function willDueAt(r: WillRecord, deathAt: number): number {
  if (r.dueAt !== undefined) return r.dueAt;
  return deathAt + Math.min(r.delayS, r.sessionExpiryS) * 1000;
}
