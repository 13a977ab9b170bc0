import { ErrorCode, Flag, FrameType, ProtocolError, StreamResetError } from './frames.js';
import { encodeResponseHead, type RequestHead, type ResponseHead } from './heads.js';

/**
 * What a channel uses of the TunnelSession that carries it (session.ts). Named here, not imported,
 * so the channel does not depend on the session that creates it.
 */
export interface ChannelSession {
  readonly role: 'hub' | 'agent';
  readonly peerMaxFrameBytes: number;
  readonly needsDrain: boolean;
  sendFrame(type: number, flags: number, stream: number, payload?: Buffer): void;
  afterDrain(cb: () => void): void;
  sendReset(stream: number, code: number): void;
  sendWindowUpdate(stream: number, increment: number): void;
  queueCredit(ch: TunnelChannel): void;
  forgetStream(id: number): void;
}

/**
 * What one end hears of the other's half of an exchange, in order: on the hub the response head, then
 * body chunks (the response's); on the agent body chunks (the request's); or a failure.
 */
export interface ChannelListener {
  /** Hub side: the device's response head. */
  onResponse?(head: ResponseHead, end: boolean): void;
  onData(chunk: Buffer, end: boolean): void;
  /** The exchange failed before the peer's half ended: the peer reset it, or the tunnel closed. */
  onError(err: Error): void;
}

/**
 * One relayed exchange on a tunnel, either end: what TunnelStream is, without a Duplex, a promise or
 * an event per request (the relay's hot path; a Duplex lifecycle costs 5-8 µs, a tenth of a relayed
 * request). The hub opens it with the request head (`session.openRequest`) and hears the response;
 * the agent gets it from `session.onChannel`, answers with `respond`, and hears the request body.
 *
 * Flow control as on TunnelStream: the peer may have at most `windowBytes` unconsumed in flight.
 * Credit goes back once per read of the connection for what the listener took, unless the listener
 * paused (its own consumer is slow); then it goes back on `resume`.
 */
export class TunnelChannel {
  /** Agent side: the request head. */
  request: RequestHead | undefined;
  /** Hub side: the response head, once it arrived. */
  response: ResponseHead | undefined;
  /** Set by whoever serves the exchange; frames that arrive before are a protocol error of the caller. */
  listener: ChannelListener | undefined;
  /** Called once when the exchange is over, however it ended (in-flight counts). */
  onClose: (() => void) | undefined;

  #sendWindow: number;
  #recvWindow: number;
  /** Bytes the listener took that are not credited back yet. */
  #uncredited = 0;
  #creditQueued = false;
  #paused = false;
  #pending: { chunk: Buffer; cb: () => void } | undefined;
  /** end() came while a chunk waited for window: END_STREAM follows that chunk. */
  #endAfterPending = false;
  #sentEnd = false;
  #gotEnd = false;
  #closed = false;

  constructor(
    readonly id: number,
    private readonly session: ChannelSession,
    listener: ChannelListener | undefined,
    sendWindow: number,
    windowBytes: number,
  ) {
    this.listener = listener;
    this.#sendWindow = sendWindow;
    this.#recvWindow = windowBytes;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The peer ended its half (on the agent at open: the request has no body). */
  get peerEnded(): boolean {
    return this.#gotEnd;
  }

  // ---- sending ----

  /** Agent side: the response head; with `end`, the response has no body. */
  respond(head: ResponseHead, end = false): void {
    if (this.#closed || this.#sentEnd) return;
    this.session.sendFrame(FrameType.RESPONSE, end ? Flag.END_STREAM : 0, this.id, encodeResponseHead(head));
    if (end) this.markSentEnd();
  }

  /**
   * Sends a body chunk (in frames within the peer's window); with `last`, its final frame also ends
   * this side (END_STREAM), which saves the peer a frame and a write when the length is known.
   * Returns true when it went out and the connection can take more; false when the caller should
   * wait for `cb` (window or socket full).
   */
  write(chunk: Buffer, cb: () => void, last = false): boolean {
    if (this.#closed || this.#sentEnd) return true;
    if (chunk.length === 0) {
      if (last) this.end();
      return true;
    }
    const maxFrame = this.session.peerMaxFrameBytes;
    while (chunk.length > 0) {
      const n = Math.min(chunk.length, this.#sendWindow, maxFrame);
      if (n === 0) {
        this.#pending = { chunk, cb };
        if (last) this.#endAfterPending = true;
        return false;
      }
      const done = n === chunk.length;
      this.session.sendFrame(FrameType.DATA, last && done ? Flag.END_STREAM : 0, this.id, done ? chunk : chunk.subarray(0, n));
      this.#sendWindow -= n;
      chunk = chunk.subarray(n);
    }
    if (last) this.markSentEnd();
    if (!this.session.needsDrain) return true;
    this.session.afterDrain(cb);
    return false;
  }

  /** Ends this side's body. */
  end(): void {
    if (this.#sentEnd || this.#closed) return;
    if (this.#pending) {
      this.#endAfterPending = true;
      return;
    }
    this.session.sendFrame(FrameType.DATA, Flag.END_STREAM, this.id);
    this.markSentEnd();
  }

  /** @internal The head frame itself ended this side (no body). */
  markSentEnd(): void {
    this.#sentEnd = true;
    if (this.#gotEnd) this.#close(undefined);
  }

  // ---- receiving: flow control ----

  /** The listener's consumer cannot take more: stop returning credit, so the peer stops sending. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#queueCredit();
  }

  /** Abandons the exchange (its client went away, or this end gave up): RESET unless it already ended. */
  cancel(code: number = ErrorCode.CANCEL): void {
    if (this.#closed) return;
    if (!(this.#sentEnd && this.#gotEnd)) this.session.sendReset(this.id, code);
    this.#close(new StreamResetError(code), false);
  }

  // ---- called by the session for frames on this stream ----

  /** @internal The REQUEST frame said the request has no body. */
  markPeerEnded(): void {
    this.#gotEnd = true;
  }

  /** @internal */
  onResponse(head: ResponseHead, end: boolean): void {
    if (this.response) throw new ProtocolError(`second RESPONSE on stream ${this.id}`);
    this.response = head;
    if (end) this.#gotEnd = true;
    this.listener?.onResponse?.(head, end);
    if (end && this.#sentEnd) this.#close(undefined);
  }

  /** @internal */
  onData(payload: Buffer, end: boolean): void {
    if (this.#gotEnd) throw new ProtocolError(`DATA after END_STREAM on stream ${this.id}`);
    if (payload.length > this.#recvWindow) {
      throw new ProtocolError(`stream ${this.id} sent ${payload.length} bytes with a window of ${this.#recvWindow}`, ErrorCode.FLOW_CONTROL_ERROR);
    }
    this.#recvWindow -= payload.length;
    if (end) this.#gotEnd = true;
    else if (payload.length > 0) {
      this.#uncredited += payload.length;
      if (!this.#paused) this.#queueCredit();
    }
    if (!this.#closed) this.listener?.onData(payload, end);
    if (end && this.#sentEnd) this.#close(undefined);
  }

  /** @internal Returns the credit used up since the last flush (the session calls it after parsing a read). */
  flushCredit(): void {
    this.#creditQueued = false;
    const n = this.#uncredited;
    if (n === 0 || this.#paused || this.#gotEnd || this.#closed) return;
    this.#uncredited = 0;
    this.#recvWindow += n;
    this.session.sendWindowUpdate(this.id, n);
  }

  /** @internal */
  onWindow(increment: number): void {
    if (increment === 0 || this.#sendWindow + increment > 0x7fffffff) {
      throw new ProtocolError(`bad WINDOW increment ${increment} on stream ${this.id}`, ErrorCode.FLOW_CONTROL_ERROR);
    }
    this.#sendWindow += increment;
    const pending = this.#pending;
    if (pending) {
      this.#pending = undefined;
      const sent = this.write(pending.chunk, pending.cb);
      if (this.#endAfterPending && !this.#pending) {
        this.#endAfterPending = false;
        this.end();
      }
      if (sent) pending.cb();
    }
  }

  /** @internal */
  onReset(code: number): void {
    if (this.#closed) return;
    if (this.#gotEnd && this.session.role === 'hub') {
      // The device answered in full and asks us to stop sending the request body: the response
      // stands (as RFC 9113 §8.1 lets a server do). On the agent a RESET always means the request
      // was abandoned: the agent must stop its work.
      this.#sentEnd = true;
      this.#close(undefined);
      return;
    }
    this.#close(new StreamResetError(code));
  }

  /** @internal The connection is gone. */
  onSessionClosed(err: Error): void {
    if (!this.#closed) this.#close(err);
  }

  #queueCredit(): void {
    if (this.#creditQueued || this.#uncredited === 0) return;
    this.#creditQueued = true;
    this.session.queueCredit(this);
  }

  /** Ends the exchange; with `err`, the listener hears it (unless this end cancelled, or on the hub the answer was complete). */
  #close(err: Error | undefined, notify = true): void {
    if (this.#closed) return;
    this.#closed = true;
    this.session.forgetStream(this.id);
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.cb();
    if (err && notify && !(this.#gotEnd && this.session.role === 'hub')) this.listener?.onError(err);
    const onClose = this.onClose;
    this.onClose = undefined;
    onClose?.();
  }
}
