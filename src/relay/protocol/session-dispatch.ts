import { ErrorCode, Flag, FrameType, FRAME_TYPE_NAMES, ProtocolError, decodeGoaway, decodeNotify, readU32, type Frame } from './frames.js';
import { parseHandshake, type Hello, type Welcome } from './handshake.js';
import { decodeRequestHead, decodeResponseHead, type RequestHead } from './heads.js';
import { decodeInvalidate, decodeLanKeys, decodeRevoked } from './lan-frames.js';
import type { Role, StreamTable } from './session-streams.js';

/**
 * What the frame handlers act on: the receiving side of one TunnelSession (session.ts). An interface
 * rather than the session itself, so the handlers reach its internals without those being public.
 */
export interface FrameHost {
  readonly role: Role;
  readonly streams: StreamTable;
  readonly established: boolean;
  /** HELLO (hub) or WELCOME (agent) has arrived; the hub is established only once it answers. */
  handshakeSeen: boolean;
  emit(event: string, ...args: unknown[]): boolean;
  sendFrame(type: number, flags: number, stream: number, payload?: Buffer): void;
  /** Takes the peer's frame and window limits; throws a ProtocolError for impossible ones. */
  adoptPeerLimits(peer: { maxFrameBytes?: unknown; windowBytes?: unknown }): void;
  /** The agent's side of the handshake is done: WELCOME arrived. */
  establish(): void;
  /** The peer opened stream `id` with a request (agent side). */
  openPeerStream(id: number, head: RequestHead, end: boolean): void;
  /** The peer sent GOAWAY. */
  peerGoaway(g: { lastStream: number; code: number; reason: string }): void;
}

/** Frames each role may receive; anything else is a protocol error. */
const RECEIVES: Record<Role, ReadonlySet<number>> = {
  hub: new Set([FrameType.HELLO, FrameType.RESPONSE, FrameType.DATA, FrameType.WINDOW, FrameType.RESET, FrameType.PING, FrameType.PONG, FrameType.GOAWAY, FrameType.NOTIFY, FrameType.INVALIDATE]),
  agent: new Set([FrameType.WELCOME, FrameType.REQUEST, FrameType.DATA, FrameType.WINDOW, FrameType.RESET, FrameType.PING, FrameType.PONG, FrameType.GOAWAY, FrameType.NOTIFY_ACK, FrameType.LAN_KEYS, FrameType.REVOKED]),
};

/** The LAN frames (0x0d and up) are connection frames too: they go on stream 0. */
const FIRST_LAN_FRAME = FrameType.LAN_KEYS;

type FrameHandler = (host: FrameHost, f: Frame, name: string) => void;

function onHandshake(host: FrameHost, f: Frame, name: string): void {
  // Checked apart from `established`: the hub stays unestablished while it checks the HELLO, and
  // a second HELLO in that time must not start a second authentication.
  if (host.established || host.handshakeSeen) throw new ProtocolError(`second ${name}`);
  host.handshakeSeen = true;
  const msg = parseHandshake<Hello | Welcome>(name, f.payload);
  if (f.type === FrameType.WELCOME) {
    const w = msg as Welcome;
    host.adoptPeerLimits(w);
    host.establish();
    host.emit('welcome', w);
  } else {
    // Refuse impossible limits now, as a protocol error, not later when sendWelcome adopts them
    // (after an asynchronous credentials check, where a throw is no longer a protocol error).
    host.adoptPeerLimits(msg as Hello);
    host.emit('hello', msg as Hello);
  }
}

const ended = (f: Frame): boolean => (f.flags & Flag.END_STREAM) !== 0;

/** Heartbeats: a PING is answered with its payload at once; both carry 8 opaque bytes. */
function onPing(host: FrameHost, f: Frame): void {
  if (f.payload.length !== 8) throw new ProtocolError('PING payload must be 8 bytes');
  host.sendFrame(FrameType.PONG, 0, 0, Buffer.from(f.payload));
  host.emit('ping', f.payload);
}

function onPong(host: FrameHost, f: Frame): void {
  if (f.payload.length !== 8) throw new ProtocolError('PONG payload must be 8 bytes');
  host.emit('pong', f.payload);
}

/** One handler per frame type (docs/protocol.md); the checks common to all run first, in dispatchFrame. */
const HANDLERS: Record<number, FrameHandler> = {
  [FrameType.HELLO]: onHandshake,
  [FrameType.WELCOME]: onHandshake,
  [FrameType.REQUEST]: (host, f) => {
    host.streams.acceptPeerId(f.stream);
    host.openPeerStream(f.stream, decodeRequestHead(f.payload), ended(f));
  },
  [FrameType.RESPONSE]: (host, f) => host.streams.streamFor(f)?.onResponse(decodeResponseHead(f.payload), ended(f)),
  [FrameType.DATA]: (host, f) => {
    const s = host.streams.streamFor(f);
    if (s && host.role === 'hub' && !s.response) throw new ProtocolError(`DATA before RESPONSE on stream ${f.stream}`);
    s?.onData(f.payload, ended(f));
  },
  [FrameType.WINDOW]: (host, f) => host.streams.streamFor(f)?.onWindow(readU32(f.payload, 'WINDOW')),
  [FrameType.RESET]: (host, f) => host.streams.streamFor(f)?.onReset(readU32(f.payload, 'RESET')),
  [FrameType.PING]: onPing,
  [FrameType.PONG]: onPong,
  [FrameType.GOAWAY]: (host, f) => host.peerGoaway(decodeGoaway(f.payload)),
  [FrameType.NOTIFY]: (host, f) => {
    const n = decodeNotify(f.payload);
    host.emit('notify', n.seq, n.text);
  },
  [FrameType.NOTIFY_ACK]: (host, f) => host.emit('notifyAck', readU32(f.payload, 'NOTIFY_ACK')),
  [FrameType.LAN_KEYS]: (host, f) => host.emit('lanKeys', decodeLanKeys(f.payload)),
  [FrameType.REVOKED]: (host, f) => host.emit('revoked', decodeRevoked(f.payload)),
  [FrameType.INVALIDATE]: (host, f) => host.emit('invalidate', decodeInvalidate(f.payload)),
};

/**
 * Checks a parsed frame against what the receiving end may get at this point (its role, the
 * handshake, stream 0 or not) and hands it to its handler. Throws ProtocolError for a frame the peer
 * must not have sent; the session closes the connection with its code.
 */
export function dispatchFrame(host: FrameHost, f: Frame): void {
  const name = FRAME_TYPE_NAMES[f.type]!;
  const role = host.role;
  if (!RECEIVES[role].has(f.type)) throw new ProtocolError(`${name} frame not allowed towards the ${role}`);
  const handshake = role === 'hub' ? FrameType.HELLO : FrameType.WELCOME;
  if (!host.established && f.type !== handshake && f.type !== FrameType.GOAWAY) {
    if (role === 'agent') throw new ProtocolError(`${name} frame before WELCOME`);
    throw new ProtocolError(host.handshakeSeen
      ? `${name} frame before WELCOME: an agent sends nothing after HELLO until the hub answers`
      : `${name} frame before HELLO`);
  }
  const connectionLevel = f.type === FrameType.HELLO || f.type === FrameType.WELCOME || f.type === FrameType.PING
    || f.type === FrameType.PONG || f.type === FrameType.GOAWAY || f.type === FrameType.NOTIFY || f.type === FrameType.NOTIFY_ACK
    || f.type >= FIRST_LAN_FRAME;
  if (connectionLevel !== (f.stream === 0)) {
    throw new ProtocolError(connectionLevel ? `${name} frame must be on stream 0` : `${name} frame on stream 0`);
  }
  HANDLERS[f.type]!(host, f, name);
}

/** Whether an error GOAWAY is final: the peer closes right after it (any code but a graceful one, or before the handshake). */
export function goawayIsFinal(established: boolean, code: number): boolean {
  return !established || code !== ErrorCode.NO_ERROR && code !== ErrorCode.SHUTTING_DOWN;
}
