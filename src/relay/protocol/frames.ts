/**
 * Tunnel wire format (docs/protocol.md). Every frame starts with a 10-byte header:
 *
 *   TYPE u8 | LENGTH u32 BE | FLAGS u8 | STREAM u32 BE | PAYLOAD (LENGTH bytes)
 *
 * TYPE and LENGTH come first, as in the CloudREST daemon's format (seed 002); FLAGS and STREAM add
 * multiplexing: many requests share one connection, each on its own stream id.
 */
export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 10;

export const FrameType = {
  HELLO: 0x01,
  WELCOME: 0x02,
  REQUEST: 0x03,
  RESPONSE: 0x04,
  DATA: 0x05,
  WINDOW: 0x06,
  RESET: 0x07,
  PING: 0x08,
  PONG: 0x09,
  GOAWAY: 0x0a,
  NOTIFY: 0x0b,
  NOTIFY_ACK: 0x0c,
  // LAN access (lan-frames.ts); sent only to a peer whose HELLO or WELCOME lists the "lan" feature.
  LAN_KEYS: 0x0d,
  REVOKED: 0x0e,
  INVALIDATE: 0x0f,
} as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

export const FRAME_TYPE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(FrameType).map(([name, code]) => [code, name]),
);

/** FLAGS bits. */
export const Flag = {
  /** The sender will send nothing more on this stream. */
  END_STREAM: 0x01,
} as const;

/** Codes carried by RESET and GOAWAY. */
export const ErrorCode = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  FRAME_TOO_LARGE: 4,
  CANCEL: 5,
  REFUSED_STREAM: 6,
  AUTH_FAILED: 7,
  TAKEN_OVER: 8,
  SHUTTING_DOWN: 9,
  UNSUPPORTED_VERSION: 10,
  TIMEOUT: 11,
  /** The device is revoked (`cloudrest devices revoke`): refused at HELLO, or its live tunnel closed. */
  REVOKED: 12,
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export const ERROR_CODE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(ErrorCode).map(([name, code]) => [code, name]),
);

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** A violation of the tunnel protocol by the peer; the connection is closed with `code`. */
/** A stream ended by the peer's RESET, or by the connection closing. */
export class StreamResetError extends Error {
  override readonly name = 'StreamResetError';
  constructor(readonly code: number, message?: string) {
    super(message ?? `stream reset: ${ERROR_CODE_NAMES[code] ?? code}`);
  }
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    message: string,
    readonly code: ErrorCodeValue = ErrorCode.PROTOCOL_ERROR,
  ) {
    super(message);
  }
}

/** Frames with small payloads are built in one buffer; larger payloads go out as header + payload. */
const COPY_LIMIT = 1024;

export function encodeHeader(type: number, flags: number, stream: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h[0] = type;
  h.writeUInt32BE(length, 1);
  h[5] = flags;
  h.writeUInt32BE(stream, 6);
  return h;
}

/** Encodes a frame; returns one or two buffers (header and payload) to write in order. */
export function encodeFrame(type: number, flags: number, stream: number, payload?: Buffer): Buffer[] {
  const length = payload?.length ?? 0;
  if (payload && length > 0 && length <= COPY_LIMIT) {
    const b = Buffer.allocUnsafe(HEADER_BYTES + length);
    b[0] = type;
    b.writeUInt32BE(length, 1);
    b[5] = flags;
    b.writeUInt32BE(stream, 6);
    payload.copy(b, HEADER_BYTES);
    return [b];
  }
  const h = encodeHeader(type, flags, stream, length);
  return payload && length > 0 ? [h, payload] : [h];
}

export function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

export function encodeGoaway(lastStream: number, code: number, reason: string): Buffer {
  // Bounded in bytes, so a peer with the smallest frame limit (1 KiB) can always take it.
  const r = Buffer.from(reason, 'utf8').subarray(0, 512);
  const b = Buffer.allocUnsafe(8 + r.length);
  b.writeUInt32BE(lastStream, 0);
  b.writeUInt32BE(code, 4);
  r.copy(b, 8);
  return b;
}

export function decodeGoaway(p: Buffer): { lastStream: number; code: number; reason: string } {
  if (p.length < 8) throw new ProtocolError('GOAWAY payload shorter than 8 bytes');
  return { lastStream: p.readUInt32BE(0), code: p.readUInt32BE(4), reason: p.toString('utf8', 8) };
}

export function encodeNotify(seq: number, text: Buffer): Buffer {
  const b = Buffer.allocUnsafe(4 + text.length);
  b.writeUInt32BE(seq, 0);
  text.copy(b, 4);
  return b;
}

export function decodeNotify(p: Buffer): { seq: number; text: Buffer } {
  if (p.length < 4) throw new ProtocolError('NOTIFY payload shorter than 4 bytes');
  return { seq: p.readUInt32BE(0), text: p.subarray(4) };
}

export function readU32(p: Buffer, what: string): number {
  if (p.length !== 4) throw new ProtocolError(`${what} payload must be 4 bytes, got ${p.length}`);
  return p.readUInt32BE(0);
}
