/**
 * How the hub reaches a device: "open a request stream to device X, wherever its tunnel is". The relay,
 * device authentication, the admin socket's revocations and LAN trust go through this and nothing else,
 * so a hub whose device is held by another node (a front routing to an edge, docs/scale-out.md) swaps
 * the implementation and keeps its callers. Embedded: LocalTunnelRouter (src/relay/edge/local-tunnel-router.ts)
 * over this process's tunnels.
 */
import type { ErrorCode } from '../errors.js';
import type { RequestHead, ResponseHead } from './protocol/heads.js';
import type { RevokedEntry } from './protocol/lan-frames.js';
import type { PublicTokenKey } from './protocol/signed-token.js';

/** What the caller hears of the device's half of one exchange, in order: the head, body chunks, or a failure. */
export interface ResponseListener {
  onResponse(head: ResponseHead, end: boolean): void;
  /** A body chunk (possibly empty when only `end` is news). */
  onData(chunk: Buffer, end: boolean): void;
  /** The exchange failed before the device's answer was complete: the device reset it or its tunnel went away. */
  onError(err: Error): void;
}

/**
 * One open exchange with a device: the request body goes up, the answer comes back to the listener
 * given to `open`. Flow control is end to end: the device sends no more than its window while the
 * caller is paused.
 */
export interface RequestStream {
  /** Sends a request body chunk; false when the caller should wait for `cb` before the next one. */
  write(chunk: Buffer, cb: () => void): boolean;
  /** Ends the request body. */
  end(): void;
  /** The caller's consumer is slow: the device is held back (no more credit) until `resume`. */
  pause(): void;
  resume(): void;
  /** Abandons the exchange (the client went away, a timeout); the listener hears nothing more. */
  cancel(): void;
}

/** A request waiting for one of the device's in-flight slots. */
export interface WaitingStream {
  /** The stream once it started; rejects with a RouteError if the device went away meanwhile or `cancel` was called. */
  readonly started: Promise<RequestStream>;
  /** Leaves the queue; no effect once started (cancel the stream instead). */
  cancel(): void;
}

/**
 * What `open` gives: the stream (the fast path, no promise), a place in the device's queue, or why
 * not: 'offline' (no tunnel anywhere: 503 CR_ERR_DEVICE_OFFLINE), 'busy' (the device's queue is full: 429).
 */
export type Opened = RequestStream | WaitingStream | 'offline' | 'busy';

/** Frames for a device's agent that are not part of an exchange (docs/protocol.md "LAN access"). */
export type ControlFrame =
  | { kind: 'lan-keys'; keys: readonly PublicTokenKey[] }
  /** Split into as many REVOKED frames as the agent's frame size needs. */
  | { kind: 'revoked'; entries: readonly RevokedEntry[] };

const ROUTE_ERROR_MESSAGES = {
  CR_ERR_DEVICE_OFFLINE: 'the device went offline',
  CR_ERR_DEVICE_DISCONNECTED: 'the device disconnected',
  CR_ERR_TOO_MANY_REQUESTS: "the device's request queue is full",
} as const;

/** A queued request that could not start, or one sent ahead that the edge refused: `code` is the client's answer. */
export class RouteError extends Error {
  override readonly name = 'RouteError';
  constructor(readonly code: Extract<ErrorCode, 'CR_ERR_DEVICE_OFFLINE' | 'CR_ERR_DEVICE_DISCONNECTED' | 'CR_ERR_TOO_MANY_REQUESTS'>, options?: { cause?: unknown }) {
    super(ROUTE_ERROR_MESSAGES[code], options);
  }
}

export interface TunnelRouter {
  /**
   * Opens an exchange with the device: `head` goes out at once (with `end`, the request has no body).
   * Synchronous when the answer is known here (the device's tunnel is on this node); a promise when it
   * must be looked up or reached elsewhere.
   */
  open(deviceId: string, head: RequestHead, end: boolean, listener: ResponseListener): Opened | Promise<Opened>;
  /** Sends a control frame to the device's agent. False when no tunnel of the device took it. */
  send(deviceId: string, frame: ControlFrame): Promise<boolean>;
  /**
   * Closes the device's tunnel now with a GOAWAY `code` (docs/protocol.md), e.g. REVOKED: requests in
   * flight fail, and connections of the device still in the handshake are refused too. False when the
   * device had no established tunnel.
   */
  closeTunnel(deviceId: string, code: number, reason: string): Promise<boolean>;
}

/** True when `open` queued the request (narrows the union without a class test). */
export function isWaiting(opened: RequestStream | WaitingStream): opened is WaitingStream {
  return 'started' in opened;
}
