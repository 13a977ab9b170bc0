import { ErrorCode, PROTOCOL_VERSION, ProtocolError } from './frames.js';

/** HELLO: the agent's first frame. JSON: connect-time only, never on the request path. */
export interface Hello {
  version: number;
  deviceId: string;
  secret: string;
  /** Random per agent process; lets the hub drop notifications resent after a reconnect. */
  bootId: string;
  /** The JSON the device's REST service returns at GET /device. */
  info: Record<string, unknown>;
  maxFrameBytes: number;
  windowBytes: number;
  /** Streams the agent serves at once; the hub queues beyond this. */
  maxStreams: number;
  /** Optional extensions the agent speaks (`"lan"`: LAN_KEYS, REVOKED, INVALIDATE); absent = none. */
  features?: string[];
}

/** WELCOME: the hub's answer to a valid HELLO. */
export interface Welcome {
  version: number;
  pingIntervalMs: number;
  idleTimeoutMs: number;
  maxFrameBytes: number;
  windowBytes: number;
  /** Optional extensions the hub speaks; absent = none. */
  features?: string[];
}

/** True when a HELLO or WELCOME lists `feature` (a peer may send anything: check the shape). */
export function hasFeature(msg: { features?: unknown }, feature: string): boolean {
  return Array.isArray(msg.features) && msg.features.length <= 64 && msg.features.includes(feature);
}

/**
 * Parses a HELLO or WELCOME payload: a JSON object of this protocol version. Throws ProtocolError.
 * Only the version is checked here; the receiver validates the fields it uses.
 */
export function parseHandshake<T extends object>(name: string, payload: Buffer): T {
  let msg: unknown;
  try {
    msg = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new ProtocolError(`${name} payload is not JSON`);
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new ProtocolError(`${name} payload is not a JSON object`);
  const version = (msg as { version?: unknown }).version;
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError(`unsupported protocol version ${JSON.stringify(version)} (this side speaks ${PROTOCOL_VERSION})`, ErrorCode.UNSUPPORTED_VERSION);
  }
  return msg as T;
}

/** The peer's frame and window limits from its HELLO or WELCOME, validated. */
export function peerLimits(peer: { maxFrameBytes?: unknown; windowBytes?: unknown }): { maxFrameBytes: number; windowBytes: number } {
  const mf = peer.maxFrameBytes;
  const wb = peer.windowBytes;
  if (typeof mf !== 'number' || !Number.isInteger(mf) || mf < 1024 || mf > 16 * 1024 * 1024) throw new ProtocolError('maxFrameBytes must be an integer from 1024 to 16777216');
  if (typeof wb !== 'number' || !Number.isInteger(wb) || wb < 1024 || wb > 0x7fffffff) throw new ProtocolError('windowBytes must be an integer from 1024 to 2147483647');
  return { maxFrameBytes: mf, windowBytes: wb };
}
