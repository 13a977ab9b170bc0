import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import {
  ErrorCode,
  Flag,
  FrameType,
  FRAME_TYPE_NAMES,
  ProtocolError,
  decodeGoaway,
  decodeNotify,
  encodeFrame,
  encodeGoaway,
  encodeNotify,
  readU32,
  u32,
  type Frame,
} from './frames.js';
import { decodeRequestHead, decodeResponseHead, encodeRequestHead, type RequestHead } from './heads.js';
import { decodeInvalidate, decodeLanKeys, decodeRevoked, encodeInvalidate, encodeLanKeys, encodeRevoked, type RevokedEntry } from './lan-frames.js';
import { FrameParser } from './parser.js';
import type { PublicTokenKey } from './signed-token.js';
import { parseHandshake, peerLimits, type Hello, type Welcome } from './handshake.js';
import { TunnelChannel, type ChannelListener } from './channel.js';
import { StreamResetError, TunnelStream } from './stream.js';

export type { Hello, Welcome } from './handshake.js';

export interface SessionOptions {
  /** Largest payload accepted from the peer. */
  maxFrameBytes: number;
  /** Flow-control window granted to the peer per stream. */
  windowBytes: number;
}

export type Role = 'hub' | 'agent';

/** Frames each role may receive; anything else is a protocol error. */
const RECEIVES: Record<Role, ReadonlySet<number>> = {
  hub: new Set([FrameType.HELLO, FrameType.RESPONSE, FrameType.DATA, FrameType.WINDOW, FrameType.RESET, FrameType.PING, FrameType.PONG, FrameType.GOAWAY, FrameType.NOTIFY, FrameType.INVALIDATE]),
  agent: new Set([FrameType.WELCOME, FrameType.REQUEST, FrameType.DATA, FrameType.WINDOW, FrameType.RESET, FrameType.PING, FrameType.PONG, FrameType.GOAWAY, FrameType.NOTIFY_ACK, FrameType.LAN_KEYS, FrameType.REVOKED]),
};

/** The LAN frames (0x0d and up) are connection frames too: they go on stream 0. */
const FIRST_LAN_FRAME = FrameType.LAN_KEYS;

const HANDSHAKE_MAX_FRAME = 64 * 1024;
const MAX_STREAM_ID = 0x7fffffff;

/**
 * One tunnel connection, either end. Takes any duplex byte stream (TCP, TLS, WebSocket adapter),
 * parses frames, multiplexes request streams and applies per-stream flow control. Events:
 *
 * - 'hello' (Hello) on the hub, 'welcome' (Welcome) on the agent: handshake frames
 * - 'stream' (TunnelStream) on the agent: a relayed request arrived
 * - 'notify' (seq, text) on the hub; 'notifyAck' (seq) on the agent
 * - 'lanKeys' (PublicTokenKey[]) and 'revoked' (RevokedEntry[]) on the agent; 'invalidate' (targets) on the hub
 * - 'ping' / 'pong' (payload)
 * - 'goaway' ({lastStream, code, reason}): the peer is closing; open no new streams
 * - 'close' (error or undefined): the connection is gone; every open stream was destroyed
 */
export class TunnelSession extends EventEmitter {
  /** Largest payload the peer accepts; known after the handshake. */
  peerMaxFrameBytes = 16 * 1024;
  /** Send window for new streams; the peer's windowBytes once known. */
  peerWindowBytes = 64 * 1024;
  /** When the last bytes arrived (ms since epoch): for idle detection. */
  lastReceivedAt = Date.now();
  /** Set on the hub once HELLO is accepted, on the agent once WELCOME arrives. */
  established = false;
  /**
   * Agent side: serves each relayed request as a TunnelChannel (the lean form the agent uses). Without
   * it, requests arrive as TunnelStream duplexes in 'stream' events.
   */
  onChannel: ((ch: TunnelChannel) => void) | undefined;
  readonly #streams = new Map<number, TunnelChannel>();
  /** Channels with credit to return once the current read is parsed. */
  #credits: TunnelChannel[] = [];
  #parsing = false;
  #creditFlushScheduled = false;
  readonly #parser: FrameParser;
  #nextStreamId = 1;
  #highestPeerStream = 0;
  #corked = false;
  #needDrain = false;
  #drainWaiters: Array<() => void> = [];
  #closed = false;
  #goawaySent = false;
  #goawayReceived = false;
  #closeError: Error | undefined;
  /** HELLO (hub) or WELCOME (agent) has arrived; the hub is established only once it answers. */
  #handshakeSeen = false;

  constructor(
    readonly duplex: Duplex,
    readonly role: Role,
    readonly options: SessionOptions,
  ) {
    super();
    this.#parser = new FrameParser(Math.min(options.maxFrameBytes, HANDSHAKE_MAX_FRAME));
    duplex.on('data', (chunk: Buffer) => this.#onData(chunk));
    duplex.on('drain', () => this.#onDrain());
    duplex.on('error', (err) => this.#teardown(err));
    duplex.on('close', () => this.#teardown(this.#closeError ?? new Error('tunnel connection closed')));
    duplex.on('end', () => this.#onEnd());
  }

  get closed(): boolean {
    return this.#closed;
  }

  get draining(): boolean {
    return this.#goawaySent || this.#goawayReceived;
  }

  get activeStreams(): number {
    return this.#streams.size;
  }

  // ---- sending ----

  /**
   * Queues a frame. Frames go out in one write per turn of the event loop (uncorked on setImmediate,
   * after every socket that was readable has been served): with many streams in flight the tunnel
   * carries many frames per syscall instead of one write per client request (measured: syscalls
   * per relayed request 2.7 → 2.1 on the hub, 3.2 → 2.2 on the agent).
   */
  sendFrame(type: number, flags: number, stream: number, payload?: Buffer): void {
    if (this.#closed) return;
    const d = this.duplex;
    if (!this.#corked) {
      this.#corked = true;
      d.cork();
      setImmediate(() => {
        this.#corked = false;
        d.uncork();
      });
    }
    let ok = true;
    for (const b of encodeFrame(type, flags, stream, payload)) ok = d.write(b);
    if (!ok) this.#needDrain = true;
  }

  /** The connection's buffer is over its mark: writers should wait for afterDrain. */
  get needsDrain(): boolean {
    return this.#needDrain && !this.#closed;
  }

  /** Runs `cb` now if the connection can take more, else once it has drained. */
  afterDrain(cb: () => void): void {
    if (!this.#needDrain || this.#closed) cb();
    else this.#drainWaiters.push(cb);
  }

  sendHello(hello: Hello): void {
    this.sendFrame(FrameType.HELLO, 0, 0, Buffer.from(JSON.stringify(hello)));
  }

  sendWelcome(welcome: Welcome, peer: { maxFrameBytes: number; windowBytes: number }): void {
    this.#adoptPeerLimits(peer);
    this.established = true;
    this.#parser.setMaxFrameBytes(this.options.maxFrameBytes);
    this.sendFrame(FrameType.WELCOME, 0, 0, Buffer.from(JSON.stringify(welcome)));
  }

  sendPing(payload: Buffer = Buffer.alloc(8)): void {
    this.sendFrame(FrameType.PING, 0, 0, payload);
  }

  sendNotify(seq: number, text: Buffer): void {
    this.sendFrame(FrameType.NOTIFY, 0, 0, encodeNotify(seq, text));
  }

  sendNotifyAck(seq: number): void {
    this.sendFrame(FrameType.NOTIFY_ACK, 0, 0, u32(seq));
  }

  /** Hub side: the public keys that sign access tokens (LAN_KEYS). */
  sendLanKeys(keys: readonly PublicTokenKey[]): void {
    this.sendFrame(FrameType.LAN_KEYS, 0, 0, encodeLanKeys(keys));
  }

  /** Hub side: revoked tokens (REVOKED); the caller splits long lists to fit the agent's frame limit. */
  sendRevoked(entries: readonly RevokedEntry[]): void {
    this.sendFrame(FrameType.REVOKED, 0, 0, encodeRevoked(entries));
  }

  /** Agent side: request targets whose cached answers the hub should drop (INVALIDATE). */
  sendInvalidate(targets: readonly string[]): void {
    this.sendFrame(FrameType.INVALIDATE, 0, 0, encodeInvalidate(targets));
  }

  sendReset(stream: number, code: number): void {
    this.sendFrame(FrameType.RESET, 0, stream, u32(code));
  }

  /** Hub side: opens a stream carrying a relayed request. With `end`, the request has no body. */
  request(head: RequestHead, end: boolean): TunnelStream {
    const s = new TunnelStream(this.openRequest(head, end, undefined));
    if (end) s.headEndedWritable();
    return s;
  }

  /**
   * Hub side: opens a stream for a relayed request whose answer goes to `listener`: the relay's lean
   * form of `request` (no Duplex per request). With `end`, the request has no body.
   */
  openRequest(head: RequestHead, end: boolean, listener: ChannelListener | undefined): TunnelChannel {
    if (this.#closed || this.draining) throw new StreamResetError(ErrorCode.REFUSED_STREAM, 'tunnel is closing');
    if (this.#nextStreamId > MAX_STREAM_ID) throw new StreamResetError(ErrorCode.REFUSED_STREAM, 'stream ids exhausted');
    const id = this.#nextStreamId++;
    const ch = new TunnelChannel(id, this, listener, this.peerWindowBytes, this.options.windowBytes);
    this.#streams.set(id, ch);
    this.sendFrame(FrameType.REQUEST, end ? Flag.END_STREAM : 0, id, encodeRequestHead(head));
    if (end) ch.markSentEnd();
    return ch;
  }

  /** @internal A channel consumed answer bytes: its WINDOW goes out once the current read is parsed. */
  queueCredit(ch: TunnelChannel): void {
    this.#credits.push(ch);
    if (!this.#parsing && !this.#creditFlushScheduled) {
      this.#creditFlushScheduled = true;
      queueMicrotask(() => this.#flushCredits());
    }
  }

  /** @internal */
  sendWindowUpdate(stream: number, increment: number): void {
    this.sendFrame(FrameType.WINDOW, 0, stream, u32(increment));
  }

  #flushCredits(): void {
    this.#creditFlushScheduled = false;
    const credits = this.#credits;
    if (credits.length === 0) return;
    this.#credits = [];
    for (const ch of credits) ch.flushCredit();
  }

  /**
   * Graceful close: tell the peer to open nothing new, let open streams finish, then close.
   * `lastStream` tells the agent which requests the hub will still take answers for.
   */
  goaway(code: number, reason: string): void {
    if (this.#closed || this.#goawaySent) return;
    this.#goawaySent = true;
    const last = this.role === 'hub' ? this.#nextStreamId - 1 : this.#highestPeerStream;
    this.sendFrame(FrameType.GOAWAY, 0, 0, encodeGoaway(last, code, reason));
    this.#closeIfIdle();
  }

  /** Closes now: GOAWAY with `code`, then the connection ends; open streams are destroyed. */
  close(code: number = ErrorCode.NO_ERROR, reason = ''): void {
    if (this.#closed) return;
    if (!this.#goawaySent) {
      this.#goawaySent = true;
      this.sendFrame(FrameType.GOAWAY, 0, 0, encodeGoaway(this.#highestPeerStream, code, reason));
    }
    // Keep the peer's reason when it spoke first (a GOAWAY with AUTH_FAILED or TAKEN_OVER).
    this.#closeError ??= new StreamResetError(code, reason || 'tunnel closed');
    this.duplex.end();
    // A peer that never reads must not keep the socket open.
    const t = setTimeout(() => this.duplex.destroy(), 2000);
    t.unref();
    this.#teardown(this.#closeError);
  }

  /** Drops the connection without a word (used when the peer is unresponsive). */
  destroy(err: Error): void {
    this.#closeError = err;
    this.duplex.destroy();
    this.#teardown(err);
  }

  /** @internal */
  forgetStream(id: number): void {
    if (this.#streams.delete(id) && this.#streams.size === 0) this.#closeIfIdle();
  }

  // ---- receiving ----

  #onData(chunk: Buffer): void {
    if (this.#closed) return;
    this.lastReceivedAt = Date.now();
    this.#parsing = true;
    try {
      this.#parser.push(chunk, (f) => this.#onFrame(f));
      this.#parsing = false;
      // One WINDOW per stream per read, and none for a stream whose answer ended in the same read.
      this.#flushCredits();
    } catch (err) {
      this.#parsing = false;
      if (err instanceof ProtocolError) {
        this.emit('protocolError', err);
        this.close(err.code, err.message);
      } else {
        this.close(ErrorCode.INTERNAL_ERROR, 'internal error');
        this.emit('internalError', err);
      }
    }
  }

  #onFrame(f: Frame): void {
    if (this.#closed) return;
    const name = FRAME_TYPE_NAMES[f.type]!;
    if (!RECEIVES[this.role].has(f.type)) throw new ProtocolError(`${name} frame not allowed towards the ${this.role}`);
    const handshake = this.role === 'hub' ? FrameType.HELLO : FrameType.WELCOME;
    if (!this.established && f.type !== handshake && f.type !== FrameType.GOAWAY) {
      if (this.role === 'agent') throw new ProtocolError(`${name} frame before WELCOME`);
      throw new ProtocolError(this.#handshakeSeen
        ? `${name} frame before WELCOME: an agent sends nothing after HELLO until the hub answers`
        : `${name} frame before HELLO`);
    }
    const connectionLevel = f.type === FrameType.HELLO || f.type === FrameType.WELCOME || f.type === FrameType.PING
      || f.type === FrameType.PONG || f.type === FrameType.GOAWAY || f.type === FrameType.NOTIFY || f.type === FrameType.NOTIFY_ACK
      || f.type >= FIRST_LAN_FRAME;
    if (connectionLevel !== (f.stream === 0)) {
      throw new ProtocolError(connectionLevel ? `${name} frame must be on stream 0` : `${name} frame on stream 0`);
    }
    switch (f.type) {
      case FrameType.HELLO:
      case FrameType.WELCOME: {
        // Checked apart from `established`: the hub stays unestablished while it checks the HELLO, and
        // a second HELLO in that time must not start a second authentication.
        if (this.established || this.#handshakeSeen) throw new ProtocolError(`second ${name}`);
        this.#handshakeSeen = true;
        const msg = parseHandshake<Hello | Welcome>(name, f.payload);
        if (f.type === FrameType.WELCOME) {
          const w = msg as Welcome;
          this.#adoptPeerLimits(w);
          this.established = true;
          this.#parser.setMaxFrameBytes(this.options.maxFrameBytes);
          this.emit('welcome', w);
        } else {
          // Refuse impossible limits now, as a protocol error, not later when sendWelcome adopts them
          // (after an asynchronous credentials check, where a throw is no longer a protocol error).
          this.#adoptPeerLimits(msg as Hello);
          this.emit('hello', msg as Hello);
        }
        return;
      }
      case FrameType.REQUEST: {
        if (f.stream <= this.#highestPeerStream) throw new ProtocolError(`REQUEST reuses stream id ${f.stream}`);
        this.#highestPeerStream = f.stream;
        const head = decodeRequestHead(f.payload);
        if (this.#goawaySent) {
          this.sendReset(f.stream, ErrorCode.REFUSED_STREAM);
          return;
        }
        const ch = new TunnelChannel(f.stream, this, undefined, this.peerWindowBytes, this.options.windowBytes);
        ch.request = head;
        const end = (f.flags & Flag.END_STREAM) !== 0;
        if (end) ch.markPeerEnded();
        this.#streams.set(f.stream, ch);
        if (this.onChannel) {
          this.onChannel(ch);
          return;
        }
        const s = new TunnelStream(ch);
        if (end) s.peerEndedAtOpen();
        this.emit('stream', s);
        return;
      }
      case FrameType.RESPONSE: {
        const s = this.#streamFor(f);
        s?.onResponse(decodeResponseHead(f.payload), (f.flags & Flag.END_STREAM) !== 0);
        return;
      }
      case FrameType.DATA: {
        const s = this.#streamFor(f);
        if (s && this.role === 'hub' && !s.response) throw new ProtocolError(`DATA before RESPONSE on stream ${f.stream}`);
        s?.onData(f.payload, (f.flags & Flag.END_STREAM) !== 0);
        return;
      }
      case FrameType.WINDOW:
        this.#streamFor(f)?.onWindow(readU32(f.payload, 'WINDOW'));
        return;
      case FrameType.RESET:
        this.#streamFor(f)?.onReset(readU32(f.payload, 'RESET'));
        return;
      case FrameType.PING:
        if (f.payload.length !== 8) throw new ProtocolError('PING payload must be 8 bytes');
        this.sendFrame(FrameType.PONG, 0, 0, Buffer.from(f.payload));
        this.emit('ping', f.payload);
        return;
      case FrameType.PONG:
        if (f.payload.length !== 8) throw new ProtocolError('PONG payload must be 8 bytes');
        this.emit('pong', f.payload);
        return;
      case FrameType.GOAWAY: {
        const g = decodeGoaway(f.payload);
        this.#goawayReceived = true;
        this.emit('goaway', g);
        if (!this.established || g.code !== ErrorCode.NO_ERROR && g.code !== ErrorCode.SHUTTING_DOWN) {
          // An error GOAWAY is final: the peer closes right after it.
          this.#closeError = new StreamResetError(g.code, g.reason);
        }
        this.#closeIfIdle();
        return;
      }
      case FrameType.NOTIFY: {
        const n = decodeNotify(f.payload);
        this.emit('notify', n.seq, n.text);
        return;
      }
      case FrameType.NOTIFY_ACK:
        this.emit('notifyAck', readU32(f.payload, 'NOTIFY_ACK'));
        return;
      case FrameType.LAN_KEYS:
        this.emit('lanKeys', decodeLanKeys(f.payload));
        return;
      case FrameType.REVOKED:
        this.emit('revoked', decodeRevoked(f.payload));
        return;
      case FrameType.INVALIDATE:
        this.emit('invalidate', decodeInvalidate(f.payload));
        return;
    }
  }

  /** The open stream a frame is for; undefined for a stream that already closed; error for one never opened. */
  #streamFor(f: Frame): TunnelChannel | undefined {
    const s = this.#streams.get(f.stream);
    if (s) return s;
    const opened = this.role === 'hub' ? this.#nextStreamId - 1 : this.#highestPeerStream;
    if (f.stream > opened) throw new ProtocolError(`${FRAME_TYPE_NAMES[f.type]} frame for stream ${f.stream}, which was never opened`);
    return undefined;
  }

  #adoptPeerLimits(peer: { maxFrameBytes?: unknown; windowBytes?: unknown }): void {
    const limits = peerLimits(peer);
    this.peerMaxFrameBytes = limits.maxFrameBytes;
    this.peerWindowBytes = limits.windowBytes;
  }

  #onEnd(): void {
    // The peer stopped sending in the middle of a frame: its framing is broken, say so before closing.
    if (!this.#closed && this.#parser.pending > 0) {
      const err = new ProtocolError(`connection ended inside a frame (${this.#parser.pending} bytes of it received)`);
      this.emit('protocolError', err);
      this.close(err.code, err.message);
      return;
    }
    this.duplex.end();
  }

  #onDrain(): void {
    this.#needDrain = false;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  #closeIfIdle(): void {
    if (this.#streams.size === 0 && (this.#goawaySent || this.#goawayReceived) && !this.#closed) {
      // Let the GOAWAY (and the last frames) flush, then end.
      process.nextTick(() => {
        if (this.#streams.size === 0 && !this.#closed) this.close(ErrorCode.NO_ERROR, 'done');
      });
    }
  }

  #teardown(err: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onDrain();
    for (const s of [...this.#streams.values()]) s.onSessionClosed(err);
    this.#streams.clear();
    this.emit('close', err);
  }
}
