// The load generator's MQTT 3.1.1 wire format, hand-written so that the generator costs far less per
// message than any broker under test: packets are encoded into preallocated templates and read by a
// framer that allocates nothing per packet (3.1.1 §2, §3). Only what a bench client sends and reads is
// here: CONNECT, SUBSCRIBE, PUBLISH, PUBACK, PINGREQ out; CONNACK, SUBACK, PUBLISH, PUBACK, PINGRESP in.
import { performance } from 'node:perf_hooks';

export const PINGREQ = Buffer.from([0xc0, 0x00]);

/** Application payload layout: send time (µs, f64 LE), then filler to the payload size. */
export const STAMP_OFFSET = 0;
export const MIN_PAYLOAD_BYTES = 8;

/**
 * performance.now() counts from this process's start; adding the start's place on the machine's
 * monotonic clock (CLOCK_MONOTONIC, what process.hrtime reads) gives a time every process agrees on,
 * without a BigInt per call.
 */
const ORIGIN_US = Number(process.hrtime.bigint()) / 1000 - performance.now() * 1000;

/** Monotonic microseconds, the same clock in every process of the machine. */
export function nowUs(): number {
  return ORIGIN_US + performance.now() * 1000;
}

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

function packet(first: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first, ...varint(body.length)]), body]);
}

/** CONNECT, protocol level 4, clean session, no credentials (3.1.1 §3.1). */
export function connectPacket(clientId: string, keepaliveS: number): Buffer {
  const head = Buffer.from([0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, keepaliveS >> 8, keepaliveS & 0xff]);
  return packet(0x10, Buffer.concat([head, str(clientId)]));
}

/** SUBSCRIBE to one filter at `qos` (3.1.1 §3.8; the fixed header flags are 0010). */
export function subscribePacket(packetId: number, filter: string, qos: number): Buffer {
  const id = Buffer.from([packetId >> 8, packetId & 0xff]);
  return packet(0x82, Buffer.concat([id, str(filter), Buffer.from([qos])]));
}

/**
 * `count` PUBLISH packets to `topic` back to back, payloads filled with 'x'. The caller stamps each one
 * (and its packet id at QoS 1) at the offsets returned.
 */
export function publishTemplate(topic: string, qos: 0 | 1, payloadBytes: number, count: number): { bytes: Buffer; size: number; stampAt: number; idAt: number } {
  const t = str(topic);
  const remaining = t.length + (qos > 0 ? 2 : 0) + payloadBytes;
  const one = Buffer.concat([Buffer.from([0x30 | (qos << 1), ...varint(remaining)]), t, Buffer.alloc(qos > 0 ? 2 : 0), Buffer.alloc(payloadBytes, 'x')]);
  const idAt = 1 + varint(remaining).length + t.length;
  const stampAt = idAt + (qos > 0 ? 2 : 0) + STAMP_OFFSET;
  const bytes = Buffer.allocUnsafe(one.length * count);
  for (let i = 0; i < count; i++) one.copy(bytes, i * one.length);
  return { bytes, size: one.length, stampAt, idAt };
}

/** What the framer reports for each packet; PUBLISH gives its send stamp and packet id (0 at QoS 0). */
export interface WireHandler {
  connack(returnCode: number): void;
  suback(granted: number): void;
  publish(stampUs: number, packetId: number): void;
  puback(packetId: number): void;
  pingresp(): void;
}

/** Where a packet's variable header starts and where the packet ends (filled by readFixedHeader). */
export interface FixedHeader {
  body: number;
  end: number;
}

/**
 * Reads the fixed header of the packet at `pos` (3.1.1 §2.2: type byte, remaining length in 1-4 bytes)
 * into `out`. False when `buf` does not hold the whole packet. No allocation: callers pass one `out`.
 */
export function readFixedHeader(buf: Buffer, pos: number, out: FixedHeader): boolean {
  const n = buf.length;
  let len = 0;
  let mul = 1;
  let i = pos + 1;
  let b = 0x80;
  while ((b & 0x80) !== 0 && i < n) {
    b = buf[i++]!;
    len += (b & 0x7f) * mul;
    mul *= 128;
  }
  if ((b & 0x80) !== 0 || i + len > n) return false;
  out.body = i;
  out.end = i + len;
  return true;
}

/** Splits a byte stream into packets. A packet cut by a chunk boundary waits for the rest. */
export class Framer {
  #rest: Buffer | undefined;
  readonly #header: FixedHeader = { body: 0, end: 0 };

  constructor(private readonly h: WireHandler) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.#rest !== undefined) {
      buf = Buffer.concat([this.#rest, chunk]);
      this.#rest = undefined;
    }
    const n = buf.length;
    const h = this.#header;
    let pos = 0;
    while (pos < n) {
      const first = buf[pos]!;
      if (!readFixedHeader(buf, pos, h)) break;
      const i = h.body;
      const type = first >> 4;
      if (type === 3) {
        const qos = (first >> 1) & 3;
        const topicLen = buf.readUInt16BE(i);
        let p = i + 2 + topicLen;
        let id = 0;
        if (qos > 0) {
          id = buf.readUInt16BE(p);
          p += 2;
        }
        this.h.publish(p + 8 <= h.end ? buf.readDoubleLE(p + STAMP_OFFSET) : 0, id);
      } else if (type === 4) {
        this.h.puback(buf.readUInt16BE(i));
      } else if (type === 2) {
        this.h.connack(buf[i + 1]!);
      } else if (type === 9) {
        this.h.suback(buf[i + 2]!);
      } else if (type === 13) {
        this.h.pingresp();
      }
      pos = h.end;
    }
    if (pos < n) this.#rest = Buffer.from(buf.subarray(pos));
  }
}
