/**
 * The MQTT wire format: a per-connection decoder and the encoder for every packet but PUBLISH
 * (publish-encoder.ts). The decoder frames packets itself and hands each whole packet to mqtt-packet's
 * parser, so that:
 *
 * - the maximum packet size is enforced from the fixed header, before any of the body is buffered
 *   (5.0 §3.1.2.11.4: a packet larger than the Maximum Packet Size is answered with DISCONNECT 0x95);
 * - one parser serves every connection (it is only ever given a whole packet, synchronously): an idle
 *   connection costs a few framing fields instead of a parser and its buffer list (about 2 KB);
 * - UTF-8 strings are checked for well-formedness and U+0000 (3.1.1 [MQTT-1.5.3-1/2], 5.0
 *   [MQTT-1.5.4-1/2]), which mqtt-packet would silently replace with U+FFFD.
 */
import { isUtf8 } from 'node:buffer';
import { generate, parser as createParser, writeToStream, type IPublishPacket, type Packet } from 'mqtt-packet';
import { PartialBytes } from '../relay/protocol/partial-bytes.js';
import { MqttError, malformed, protocolError } from './errors.js';
import { fastDecode } from './fast-decode.js';
import { checkPacket } from './packet-checks.js';
import { RC } from './reason-codes.js';

// mqtt-packet would otherwise fill a cache of 65,536 two-byte Buffers (about 6 MB of heap, held for
// good) the first time it encodes a packet. The broker encodes PUBLISH and acknowledgements itself;
// what is left to generate() (CONNACK, SUBACK...) is not worth 6 MB.
writeToStream.cacheNumbers = false;

/** Largest remaining length a four-byte Variable Byte Integer can carry (5.0 §1.5.5). */
export const MAX_REMAINING_LENGTH = 268_435_455;
/** The largest packet the protocol allows: 1 type byte + 4 length bytes + the remaining length. */
export const PROTOCOL_MAX_PACKET_BYTES = MAX_REMAINING_LENGTH + 5;

const PACKET_TYPE_CONNECT = 1;
const PACKET_TYPE_AUTH = 15;

/** The parts of mqtt-packet's parser that the decoder reaches into (mqtt-packet 9, parser.js). */
interface ParserInternals {
  parse(buf: Buffer): number;
  on(event: 'packet', fn: (p: Packet) => void): unknown;
  on(event: 'error', fn: (e: Error) => void): unknown;
  settings: { protocolVersion?: number };
  error: Error | null;
  _list: { length: number; readUInt16BE(offset: number): number; slice(start: number, end: number): Buffer };
  _pos: number;
  packet: { length: number };
  _parseString(): string | null;
  _emitError(err: Error): void;
  _resetState(): void;
}

/** Where the shared parser puts what it finds during one parse() call. */
let sink: { packet: Packet | undefined; error: MqttError | null } = { packet: undefined, error: null };
const SETTINGS = { 3: { protocolVersion: 3 }, 4: { protocolVersion: 4 }, 5: { protocolVersion: 5 } } as const;
const parser = sharedParser();

function sharedParser(): ParserInternals {
  const p = createParser() as unknown as ParserInternals;
  const parseString = p._parseString;
  p._parseString = function checkedParseString(this: ParserInternals): string | null {
    const list = this._list;
    const pos = this._pos;
    if (list.length - pos >= 2) {
      const end = pos + 2 + list.readUInt16BE(pos);
      if (end <= list.length && end <= this.packet.length) {
        const bytes = list.slice(pos + 2, end);
        if (!isUtf8(bytes)) {
          this._emitError(malformed('a UTF-8 string is not well-formed UTF-8'));
          return null;
        }
        if (bytes.includes(0)) {
          this._emitError(malformed('a UTF-8 string contains U+0000'));
          return null;
        }
      }
    }
    return parseString.call(this);
  };
  p.on('packet', (packet) => {
    sink.packet = packet;
  });
  p.on('error', (err) => {
    sink.error ??= err instanceof MqttError ? err : classify(err);
  });
  return p;
}

/** Parses one whole packet of a connection at protocol level `version` (0 before CONNECT). */
function parseOne(bytes: Buffer, version: 0 | 3 | 4 | 5): { packet: Packet | undefined; error: MqttError | null } {
  const result: typeof sink = { packet: undefined, error: null };
  sink = result;
  parser.settings = SETTINGS[version === 0 ? 4 : version];
  try {
    parser.parse(bytes);
  } catch (err) {
    // mqtt-packet reads past a truncated field in a few places instead of reporting it.
    result.error ??= malformed(`undecodable packet: ${(err as Error).message}`);
  }
  if (result.packet === undefined || parser.error !== null) {
    result.error ??= malformed('incomplete packet');
    // _resetState() leaves the read position behind; _newPacket() would have cleared it.
    parser._resetState();
    parser._pos = 0;
  }
  return result;
}

export class PacketDecoder {
  readonly #maxPacketBytes: number;
  #error: MqttError | null = null;
  /** Protocol level once a CONNECT has been decoded (3, 4 or 5); 0 before. */
  #version: 0 | 3 | 4 | 5 = 0;
  // Framing state: where we are in the current packet.
  #headerBytes = 0;
  #firstByte = 0;
  #remaining = 0;
  #multiplier = 1;
  #bodyLeft = 0;
  /** Earlier pieces of a packet that spans chunks (created on first use: most reads end on a packet boundary). */
  #parts: PartialBytes | undefined;

  constructor(maxPacketBytes: number) {
    this.#maxPacketBytes = maxPacketBytes;
  }

  /** Protocol level of the decoded CONNECT (3, 4 or 5), or 0 before one was seen. */
  get protocolVersion(): number {
    return this.#version;
  }

  /** Bytes of an incomplete packet held (at most the maximum packet size); nonzero when the peer stopped mid-packet. */
  get pending(): number {
    return this.#parts?.length ?? 0;
  }

  /**
   * Decodes the packets completed by `chunk`, appending them to `packets`; returns the error that
   * stopped decoding (input that is not valid MQTT: nothing after it is decoded, and further input is
   * ignored), or null.
   */
  push(chunk: Buffer, packets: Packet[]): MqttError | null {
    if (this.#error !== null) return this.#error;
    const n = chunk.length;
    let pos = 0;
    let start = 0;
    while (pos < n) {
      if (this.#bodyLeft > 0) {
        const take = Math.min(this.#bodyLeft, n - pos);
        pos += take;
        this.#bodyLeft -= take;
        if (this.#bodyLeft > 0) break;
      } else {
        const b = chunk[pos++]!;
        if (this.#headerBytes === 0) {
          const type = b >> 4;
          if (type === 0) return this.#fail(malformed('packet type 0 is reserved'));
          if (type === PACKET_TYPE_AUTH && this.#version !== 0 && this.#version < 5) return this.#fail(malformed('AUTH exists only in MQTT 5'));
          this.#firstByte = b;
          this.#headerBytes = 1;
          this.#remaining = 0;
          this.#multiplier = 1;
          continue;
        }
        this.#headerBytes++;
        this.#remaining += (b & 0x7f) * this.#multiplier;
        this.#multiplier *= 128;
        if ((b & 0x80) !== 0) {
          // 3.1.1 §2.2.3 / 5.0 §1.5.5: at most four bytes.
          if (this.#headerBytes === 5) return this.#fail(malformed('remaining length longer than four bytes'));
          continue;
        }
        const total = this.#headerBytes + this.#remaining;
        this.#headerBytes = 0;
        // 5.0 §3.1.2.11.4 / §3.2.2.3.6: the server's Maximum Packet Size.
        if (total > this.#maxPacketBytes) return this.#fail(new MqttError(RC.PACKET_TOO_LARGE, `packet of ${total} bytes exceeds the maximum of ${this.#maxPacketBytes}`));
        // [MQTT-3.1.0-2] a second CONNECT is a protocol violation; no need to buffer it.
        if (this.#firstByte >> 4 === PACKET_TYPE_CONNECT && this.#version !== 0) return this.#fail(protocolError('second CONNECT'));
        if (this.#remaining > 0) {
          this.#bodyLeft = this.#remaining;
          continue;
        }
      }
      // A whole packet: chunk[start, pos), after any earlier pieces.
      const parts = this.#parts;
      const ok = parts === undefined ? this.#decode(chunk, start, pos, packets) : this.#decodeJoined(parts, chunk.subarray(start, pos), packets);
      start = pos;
      if (!ok) return this.#error;
    }
    // A small partial packet is copied out of its chunk, so the chunk is not kept alive; a large one is kept.
    if (start < n) (this.#parts ??= new PartialBytes()).append(chunk.subarray(start));
    return null;
  }

  /** A packet that spanned chunks: its pieces joined, then decoded. */
  #decodeJoined(parts: PartialBytes, last: Buffer, out: Packet[]): boolean {
    this.#parts = undefined;
    const bytes = parts.take(last);
    return this.#decode(bytes, 0, bytes.length, out);
  }

  /** Decodes the whole packet `chunk[start, end)`. */
  #decode(chunk: Buffer, start: number, end: number, out: Packet[]): boolean {
    // After CONNECT, the hot packets in their common forms skip mqtt-packet (fast-decode.ts), straight
    // from the chunk.
    const fast = this.#version === 0 ? undefined : fastDecode(chunk, start, end - this.#remaining, end, this.#version);
    if (fast !== undefined) {
      if (fast.cmd === 'publish') compactPayload(fast);
      out.push(fast);
      return true;
    }
    const bytes = start === 0 && end === chunk.length ? chunk : chunk.subarray(start, end);
    const { packet, error } = parseOne(bytes, this.#version);
    const problem = error ?? checkPacket(packet!, this.#version);
    if (problem !== null) {
      this.#error = problem;
      return false;
    }
    if (packet!.cmd === 'connect') this.#version = packet!.protocolVersion ?? 4;
    else if (packet!.cmd === 'publish') compactPayload(packet!);
    out.push(packet!);
    return true;
  }

  #fail(err: MqttError): MqttError {
    this.#error = err;
    this.#parts = undefined;
    return err;
  }
}

/**
 * A small payload sliced from a large read buffer would keep the whole buffer alive while the message
 * is queued or retained; it gets its own copy.
 */
function compactPayload(p: IPublishPacket): void {
  const payload = p.payload as Buffer;
  if (payload.buffer.byteLength > payload.length * 2 + 1_024) p.payload = Buffer.from(payload);
}

/** Maps mqtt-packet's error messages onto reason codes. */
function classify(err: Error): MqttError {
  if (/Invalid protocol version/.test(err.message)) return new MqttError(RC.UNSUPPORTED_PROTOCOL_VERSION, err.message, { cause: err });
  // 5.0 §3.8.3.1: Retain Handling 3 is a Protocol Error (the reserved bits are Malformed, [MQTT-3.8.3-5]).
  if (/Invalid retain handling/.test(err.message)) return new MqttError(RC.PROTOCOL_ERROR, err.message, { cause: err });
  return new MqttError(RC.MALFORMED_PACKET, err.message, { cause: err });
}

/** First bytes of the acknowledgements (PUBREL has the reserved flags 0010, [MQTT-3.6.1-1]). */
const ACK_HEADER: Partial<Record<Packet['cmd'], number>> = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70 };

/** Encodes any packet the server sends, for the client's protocol level. */
export function encode(packet: Packet, protocolVersion: number): Buffer {
  const header = ACK_HEADER[packet.cmd];
  if (header !== undefined) {
    const ack = packet as { messageId?: number; reasonCode?: number; properties?: object };
    // The common case in four bytes: 5.0 [MQTT-3.4.2-1] lets reason code 0 without properties go unsaid.
    if (ack.properties === undefined && (protocolVersion < 5 || (ack.reasonCode ?? 0) === 0)) {
      const b = Buffer.allocUnsafe(4);
      b[0] = header;
      b[1] = 2;
      b.writeUInt16BE(ack.messageId ?? 0, 2);
      return b;
    }
  }
  return generate(packet, { protocolVersion });
}
