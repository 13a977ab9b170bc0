/**
 * A message forwarded to another node, in bytes (no JSON):
 *
 *   u8 version (1) | u8 flags (bits 0-1 QoS, 2 retain, 3 expiry, 4 properties, 5 groups only: a
 *   shared-subscription redelivery, for the named groups and no ordinary subscription)
 *   | u16 topic length | topic | u8 group count | { u16 length | `$share/group/filter` }*
 *   | [u32 ms left before expiry] | [u32 properties length | properties] | payload (the rest)
 *
 * properties: u8 payload format (0 unset, 1 unspecified bytes, 2 UTF-8) | str content type
 * | str response topic | u16-length correlation data (0xffff: unset) | u16 user property count
 * | { str name | str value }*; a str is a u16 length (0xffff: unset) and UTF-8 bytes.
 *
 * The retained-message frame is the same, followed by nothing else; its owner and charged bytes go
 * first: u16 owner length | owner | u32 bytes.
 */
import type { QoS, UserProperties } from 'mqtt-packet';
import type { Message, MessageProperties } from '../message.js';

const VERSION = 1;
const UNSET = 0xffff;

export interface ForwardFrame {
  readonly message: Message;
  /** The shared groups this node was picked for. */
  readonly groups: ReadonlySet<string> | undefined;
  /** For those groups only (a member elsewhere left it unacknowledged): not for ordinary subscriptions. */
  readonly groupsOnly: boolean;
}

export function encodeForward(m: Message, groups: readonly string[] | undefined, now: number, groupsOnly = false): Buffer {
  const w = new Writer();
  writeMessage(w, m, groups ?? [], now, groupsOnly);
  return w.finish();
}

/**
 * encodeForward's frame with its u32 length before it, as it goes in a batch (routes-redis.ts). A
 * message without properties or groups, the common case, in one allocation.
 */
export function encodeForwardFramed(m: Message, groups: readonly string[] | undefined, now: number, groupsOnly = false): Buffer {
  if (m.properties === undefined && (groups === undefined || groups.length === 0)) {
    const topicBytes = Buffer.byteLength(m.topic);
    const expiry = m.expiresAt !== undefined;
    const size = 2 + 2 + topicBytes + 1 + (expiry ? 4 : 0) + m.payload.length;
    if (topicBytes < UNSET) {
      const out = Buffer.allocUnsafe(4 + size);
      out.writeUInt32BE(size, 0);
      out[4] = VERSION;
      out[5] = m.qos | (m.retain ? 4 : 0) | (expiry ? 8 : 0);
      out.writeUInt16BE(topicBytes, 6);
      let at = 8 + out.write(m.topic, 8);
      out[at++] = 0;
      if (expiry) {
        out.writeUInt32BE(Math.max(0, Math.min(0xffffffff, m.expiresAt! - now)), at);
        at += 4;
      }
      m.payload.copy(out, at);
      return out;
    }
  }
  const frame = encodeForward(m, groups, now, groupsOnly);
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(frame.length, 0);
  return Buffer.concat([length, frame]);
}

export function decodeForward(b: Buffer, now: number): ForwardFrame {
  const r = new Reader(b);
  return readMessage(r, now);
}

export function encodeRetained(m: Message, owner: string, bytes: number, now: number): Buffer {
  const w = new Writer();
  w.str(owner);
  w.u32(bytes);
  writeMessage(w, m, [], now, false);
  return w.finish();
}

export function decodeRetained(b: Buffer, now: number): { message: Message; owner: string; bytes: number } {
  const r = new Reader(b);
  const owner = r.str() ?? '';
  const bytes = r.u32();
  return { owner, bytes, message: readMessage(r, now).message };
}

function writeMessage(w: Writer, m: Message, groups: readonly string[], now: number, groupsOnly: boolean): void {
  const expiry = m.expiresAt !== undefined;
  const props = m.properties;
  w.u8(VERSION);
  w.u8(m.qos | (m.retain ? 4 : 0) | (expiry ? 8 : 0) | (props !== undefined ? 16 : 0) | (groupsOnly ? 32 : 0));
  w.str(m.topic);
  if (groups.length > 255) throw new RangeError('over 255 shared groups in one forward');
  w.u8(groups.length);
  for (const g of groups) w.str(g);
  // Time left, not a date: the nodes' clocks need not agree.
  if (expiry) w.u32(Math.max(0, Math.min(0xffffffff, m.expiresAt! - now)));
  if (props !== undefined) {
    const p = new Writer();
    p.u8(props.payloadFormatIndicator === undefined ? 0 : props.payloadFormatIndicator ? 2 : 1);
    p.str(props.contentType);
    p.str(props.responseTopic);
    p.bytes(props.correlationData);
    const pairs: Array<[string, string]> = [];
    for (const [k, v] of Object.entries(props.userProperties ?? {})) for (const one of Array.isArray(v) ? v : [v]) pairs.push([k, one]);
    p.u16(pairs.length);
    for (const [k, v] of pairs) {
      p.str(k);
      p.str(v);
    }
    const pb = p.finish();
    w.u32(pb.length);
    w.raw(pb);
  }
  w.raw(m.payload);
}

function readMessage(r: Reader, now: number): ForwardFrame {
  if (r.u8() !== VERSION) throw new RangeError('not a forward frame');
  const flags = r.u8();
  const topic = r.str() ?? '';
  const n = r.u8();
  let groups: Set<string> | undefined;
  for (let i = 0; i < n; i++) (groups ??= new Set()).add(r.str() ?? '');
  const expiresAt = (flags & 8) !== 0 ? now + r.u32() : undefined;
  let properties: MessageProperties | undefined;
  if ((flags & 16) !== 0) {
    const p = new Reader(r.take(r.u32()));
    properties = {};
    const format = p.u8();
    if (format !== 0) properties.payloadFormatIndicator = format === 2;
    const contentType = p.str();
    if (contentType !== undefined) properties.contentType = contentType;
    const responseTopic = p.str();
    if (responseTopic !== undefined) properties.responseTopic = responseTopic;
    const correlationData = p.bytes();
    if (correlationData !== undefined) properties.correlationData = correlationData;
    const count = p.u16();
    if (count > 0) {
      const user: UserProperties = {};
      for (let i = 0; i < count; i++) {
        const k = p.str() ?? '';
        const v = p.str() ?? '';
        const had = user[k];
        user[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
      }
      properties.userProperties = user;
    }
  }
  const message: Message = { topic, payload: r.rest(), qos: (flags & 3) as QoS, retain: (flags & 4) !== 0, properties, expiresAt, senderId: undefined };
  return { message, groups, groupsOnly: (flags & 32) !== 0 };
}

class Writer {
  readonly #parts: Buffer[] = [];
  #head = Buffer.allocUnsafe(256);
  #at = 0;

  #room(n: number): void {
    if (this.#at + n <= this.#head.length) return;
    this.#flush();
    if (n > this.#head.length) this.#head = Buffer.allocUnsafe(n);
  }

  #flush(): void {
    if (this.#at > 0) this.#parts.push(this.#head.subarray(0, this.#at));
    this.#head = Buffer.allocUnsafe(256);
    this.#at = 0;
  }

  u8(v: number): void {
    this.#room(1);
    this.#head[this.#at++] = v;
  }

  u16(v: number): void {
    this.#room(2);
    this.#head.writeUInt16BE(v, this.#at);
    this.#at += 2;
  }

  u32(v: number): void {
    this.#room(4);
    this.#head.writeUInt32BE(v, this.#at);
    this.#at += 4;
  }

  str(s: string | undefined): void {
    if (s === undefined) return this.u16(UNSET);
    const n = Buffer.byteLength(s);
    if (n >= UNSET) throw new RangeError('string over 65,534 bytes');
    this.u16(n);
    this.#room(n);
    this.#at += this.#head.write(s, this.#at);
  }

  bytes(b: Buffer | undefined): void {
    if (b === undefined) return this.u16(UNSET);
    if (b.length >= UNSET) throw new RangeError('bytes over 65,534');
    this.u16(b.length);
    this.raw(b);
  }

  raw(b: Buffer): void {
    this.#flush();
    this.#parts.push(b);
  }

  finish(): Buffer {
    this.#flush();
    return this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts);
  }
}

class Reader {
  #at = 0;
  constructor(readonly b: Buffer) {}

  #need(n: number): number {
    const at = this.#at;
    if (at + n > this.b.length) throw new RangeError('truncated frame');
    this.#at = at + n;
    return at;
  }

  u8(): number {
    return this.b[this.#need(1)]!;
  }

  u16(): number {
    return this.b.readUInt16BE(this.#need(2));
  }

  u32(): number {
    return this.b.readUInt32BE(this.#need(4));
  }

  str(): string | undefined {
    const n = this.u16();
    if (n === UNSET) return undefined;
    const at = this.#need(n);
    return this.b.toString('utf8', at, at + n);
  }

  bytes(): Buffer | undefined {
    const n = this.u16();
    return n === UNSET ? undefined : this.take(n);
  }

  take(n: number): Buffer {
    const at = this.#need(n);
    return this.b.subarray(at, at + n);
  }

  rest(): Buffer {
    const at = this.#at;
    this.#at = this.b.length;
    return this.b.subarray(at);
  }
}
