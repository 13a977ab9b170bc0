/**
 * What a node link adds to the tunnel protocol (docs/protocol.md "Node-to-node"), all of it in bytes
 * the protocol already carries: the device a stream is for travels as the request head's first header
 * (a `:`-name, which no HTTP header can have); the edge's routing answer for a stream (started, queued,
 * busy, offline) is a NOTIFY on stream 0 whose sequence number is the stream id; control operations
 * (close a tunnel, LAN keys, revocations) are requests with an `:op` header and a binary body.
 */
import type { HeaderList, RequestHead } from '../relay/protocol/heads.js';

export const DEVICE_HEADER = ':device';
export const OP_HEADER = ':op';
export const CODE_HEADER = ':code';
export const REASON_HEADER = ':reason';

/** Control operations (TunnelRouter's `send` and `closeTunnel`). */
export type LinkOp = 'close' | 'lan-keys' | 'revoked';
const OPS: ReadonlySet<string> = new Set<LinkOp>(['close', 'lan-keys', 'revoked']);

/** Routing answers, one byte of a NOTIFY's text. */
export const Verdict = {
  /** The device's stream is open: what the front sent so far and sends next goes to the device. */
  STARTED: 0x73, // 's'
  /** Queued behind the device's in-flight limit; STARTED (or OFFLINE/DISCONNECTED) follows. */
  QUEUED: 0x71, // 'q'
  /** The device's queue is full (429 on one node): the stream is reset next. */
  BUSY: 0x62, // 'b'
  /** The edge holds no tunnel of the device: the stream is reset next. */
  OFFLINE: 0x6f, // 'o'
  /** A queued request could not start: the device came back on another tunnel meanwhile. */
  DISCONNECTED: 0x64, // 'd'
} as const;

export const VERDICTS = [Verdict.STARTED, Verdict.QUEUED, Verdict.BUSY, Verdict.OFFLINE, Verdict.DISCONNECTED].map((v) => Buffer.of(v));

/** The head the front sends for a relayed request: the device id first, then the request's own headers. */
export function linkHead(deviceId: string, head: RequestHead): RequestHead {
  return { method: head.method, target: head.target, headers: [[DEVICE_HEADER, deviceId], ...head.headers] };
}

/** The head of a control operation. */
export function opHead(deviceId: string, op: LinkOp, extra: HeaderList = []): RequestHead {
  return { method: 'POST', target: '/', headers: [[DEVICE_HEADER, deviceId], [OP_HEADER, op], ...extra] };
}

/** What a stream on a node link asks for: a relay to the device (with the device's own head), or an operation. */
export type LinkRequest =
  | { kind: 'relay'; deviceId: string; head: RequestHead }
  | { kind: 'op'; deviceId: string; op: LinkOp; headers: HeaderList }
  | { kind: 'invalid'; why: string };

/** Reads the edge's view of a link stream's head; the device's head loses the `:` headers. */
export function parseLinkHead(head: RequestHead): LinkRequest {
  const first = head.headers[0];
  if (first === undefined || first[0] !== DEVICE_HEADER || first[1].length === 0) return { kind: 'invalid', why: `the first header must be ${DEVICE_HEADER}` };
  const deviceId = first[1];
  const second = head.headers[1];
  if (second !== undefined && second[0] === OP_HEADER) {
    if (!OPS.has(second[1])) return { kind: 'invalid', why: `unknown ${OP_HEADER} ${second[1]}` };
    return { kind: 'op', deviceId, op: second[1] as LinkOp, headers: head.headers.slice(2) };
  }
  return { kind: 'relay', deviceId, head: { method: head.method, target: head.target, headers: head.headers.slice(1) } };
}

export function headerValue(headers: HeaderList, name: string): string | undefined {
  return headers.find(([k]) => k === name)?.[1];
}
