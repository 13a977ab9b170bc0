import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { ErrorCode, Flag, FrameType, ProtocolError, StreamResetError, encodeGoaway, encodeNotify, u32, type Frame } from './frames.js';
import { encodeRequestHead, type RequestHead } from './heads.js';
import { encodeInvalidate, encodeLanKeys, encodeRevoked, type RevokedEntry } from './lan-frames.js';
import { FrameParser } from './parser.js';
import type { PublicTokenKey } from './signed-token.js';
import { peerLimits, type Hello, type Welcome } from './handshake.js';
import { TunnelChannel, type ChannelListener } from './channel.js';
import { TunnelStream } from './stream.js';
import { dispatchFrame, goawayIsFinal, type FrameHost } from './session-dispatch.js';
import { StreamTable, type Role } from './session-streams.js';
import { FrameWriter } from './session-writer.js';

export type { Hello, Welcome } from './handshake.js';
export type { Role } from './session-streams.js';

export interface SessionOptions {
  /** Largest payload accepted from the peer. */
  maxFrameBytes: number;
  /** Flow-control window granted to the peer per stream. */
  windowBytes: number;
}

const HANDSHAKE_MAX_FRAME = 64 * 1024;

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
 *
 * The parts live apart: frame checks and one handler per frame type in session-dispatch.ts, the open
 * streams and their credit in session-streams.ts, the corked write path in session-writer.ts; this
 * class holds the connection's lifecycle (handshake, GOAWAY, close) and the public API.
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
  readonly #streams: StreamTable;
  readonly #writer: FrameWriter;
  readonly #parser: FrameParser;
  readonly #host: FrameHost;
  #closed = false;
  #goawaySent = false;
  #goawayReceived = false;
  #closeError: Error | undefined;

  constructor(
    readonly duplex: Duplex,
    readonly role: Role,
    readonly options: SessionOptions,
  ) {
    super();
    this.#streams = new StreamTable(role);
    this.#writer = new FrameWriter(duplex);
    this.#parser = new FrameParser(Math.min(options.maxFrameBytes, HANDSHAKE_MAX_FRAME));
    this.#host = this.#frameHost();
    duplex.on('data', (chunk: Buffer) => this.#onData(chunk));
    duplex.on('drain', () => this.#writer.drained());
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

  /** Queues a frame; frames go out in one write per turn of the event loop (session-writer.ts). */
  sendFrame(type: number, flags: number, stream: number, payload?: Buffer): void {
    if (this.#closed) return;
    this.#writer.write(type, flags, stream, payload);
  }

  /** The connection's buffer is over its mark: writers should wait for afterDrain. */
  get needsDrain(): boolean {
    return this.#writer.needsDrain && !this.#closed;
  }

  /** Runs `cb` now if the connection can take more, else once it has drained. */
  afterDrain(cb: () => void): void {
    if (this.#closed) cb();
    else this.#writer.afterDrain(cb);
  }

  sendHello(hello: Hello): void {
    this.sendFrame(FrameType.HELLO, 0, 0, Buffer.from(JSON.stringify(hello)));
  }

  sendWelcome(welcome: Welcome, peer: { maxFrameBytes: number; windowBytes: number }): void {
    this.#adoptPeerLimits(peer);
    this.#establish();
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
    const id = this.#streams.takeId();
    if (id === undefined) throw new StreamResetError(ErrorCode.REFUSED_STREAM, 'stream ids exhausted');
    const ch = new TunnelChannel(id, this, listener, this.peerWindowBytes, this.options.windowBytes);
    this.#streams.add(ch);
    this.sendFrame(FrameType.REQUEST, end ? Flag.END_STREAM : 0, id, encodeRequestHead(head));
    if (end) ch.markSentEnd();
    return ch;
  }

  /** @internal A channel consumed answer bytes: its WINDOW goes out once the current read is parsed. */
  queueCredit(ch: TunnelChannel): void {
    this.#streams.queueCredit(ch);
  }

  /** @internal */
  sendWindowUpdate(stream: number, increment: number): void {
    this.sendFrame(FrameType.WINDOW, 0, stream, u32(increment));
  }

  /**
   * Graceful close: tell the peer to open nothing new, let open streams finish, then close.
   * `lastStream` tells the agent which requests the hub will still take answers for.
   */
  goaway(code: number, reason: string): void {
    if (this.#closed || this.#goawaySent) return;
    this.#goawaySent = true;
    this.sendFrame(FrameType.GOAWAY, 0, 0, encodeGoaway(this.#streams.lastOpened, code, reason));
    this.#closeIfIdle();
  }

  /** Closes now: GOAWAY with `code`, then the connection ends; open streams are destroyed. */
  close(code: number = ErrorCode.NO_ERROR, reason = ''): void {
    if (this.#closed) return;
    if (!this.#goawaySent) {
      this.#goawaySent = true;
      this.sendFrame(FrameType.GOAWAY, 0, 0, encodeGoaway(this.#streams.highestPeerId, code, reason));
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
    this.#streams.parsing = true;
    try {
      this.#parser.push(chunk, (f) => this.#onFrame(f));
      this.#streams.parsing = false;
      // One WINDOW per stream per read, and none for a stream whose answer ended in the same read.
      this.#streams.flushCredits();
    } catch (err) {
      this.#streams.parsing = false;
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
    dispatchFrame(this.#host, f);
  }

  /** The session as the frame handlers see it: made once per connection, closing over its internals. */
  #frameHost(): FrameHost {
    const established = (): boolean => this.established;
    return {
      role: this.role,
      streams: this.#streams,
      get established() { return established(); },
      handshakeSeen: false,
      emit: (event, ...args) => this.emit(event, ...args),
      sendFrame: (type, flags, stream, payload) => this.sendFrame(type, flags, stream, payload),
      adoptPeerLimits: (peer) => this.#adoptPeerLimits(peer),
      establish: () => this.#establish(),
      openPeerStream: (id, head, end) => this.#openPeerStream(id, head, end),
      peerGoaway: (g) => {
        this.#goawayReceived = true;
        this.emit('goaway', g);
        if (goawayIsFinal(this.established, g.code)) this.#closeError = new StreamResetError(g.code, g.reason);
        this.#closeIfIdle();
      },
    };
  }

  /** Agent side: the hub opened stream `id` with a relayed request. */
  #openPeerStream(id: number, head: RequestHead, end: boolean): void {
    if (this.#goawaySent) {
      this.sendReset(id, ErrorCode.REFUSED_STREAM);
      return;
    }
    const ch = new TunnelChannel(id, this, undefined, this.peerWindowBytes, this.options.windowBytes);
    ch.request = head;
    if (end) ch.markPeerEnded();
    this.#streams.add(ch);
    if (this.onChannel) {
      this.onChannel(ch);
      return;
    }
    const s = new TunnelStream(ch);
    if (end) s.peerEndedAtOpen();
    this.emit('stream', s);
  }

  /** The handshake is done (WELCOME sent or received): frames up to our own limit are accepted now. */
  #establish(): void {
    this.established = true;
    this.#parser.setMaxFrameBytes(this.options.maxFrameBytes);
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
    this.#writer.drained();
    this.#streams.closeAll(err);
    this.emit('close', err);
  }
}
