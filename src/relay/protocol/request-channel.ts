import { ErrorCode, Flag, FrameType, ProtocolError } from './frames.js';
import type { ResponseHead } from './heads.js';
import { StreamResetError } from './stream.js';
import type { TunnelSession } from './session.js';

/** What the hub hears of one relayed request's answer, in order: the head, body chunks; or a failure. */
export interface ResponseListener {
  onResponse(head: ResponseHead, end: boolean): void;
  onData(chunk: Buffer, end: boolean): void;
  /** The exchange failed before its end: the agent reset it, or the tunnel closed. */
  onError(err: Error): void;
}

/**
 * The hub's end of one relayed request: what TunnelStream is on the agent, without a Duplex, a
 * promise or an event per request (the relay's hot path; a Duplex per request was a tenth of the
 * hub's CPU). The answer goes to a ResponseListener; the request body is written with `write`/`end`.
 *
 * Flow control as on TunnelStream: the agent may have at most `windowBytes` of unconsumed answer in
 * flight. Credit is returned after each batch of frames the listener took, unless the listener
 * paused (its client is slow), in which case it is returned on `resume`.
 */
export class RequestChannel {
  response: ResponseHead | undefined;
  /** Called once when the exchange is over, however it ended (the device tunnel's in-flight count). */
  onClose: (() => void) | undefined;

  #sendWindow: number;
  #recvWindow: number;
  /** Bytes the listener took that are not credited back yet. */
  #uncredited = 0;
  #creditQueued = false;
  #paused = false;
  #pending: { chunk: Buffer; cb: (err?: Error | null) => void } | undefined;
  #sentEnd = false;
  #gotEnd = false;
  #closed = false;

  constructor(
    readonly id: number,
    private readonly session: TunnelSession,
    private readonly listener: ResponseListener,
    sendWindow: number,
    windowBytes: number,
  ) {
    this.#sendWindow = sendWindow;
    this.#recvWindow = windowBytes;
  }

  get closed(): boolean {
    return this.#closed;
  }

  // ---- the request body ----

  /** Sends a chunk of the request body; `cb` runs once the tunnel can take more. */
  write(chunk: Buffer, cb: (err?: Error | null) => void): void {
    if (this.#closed || this.#sentEnd) {
      cb();
      return;
    }
    const maxFrame = this.session.peerMaxFrameBytes;
    while (chunk.length > 0) {
      const n = Math.min(chunk.length, this.#sendWindow, maxFrame);
      if (n === 0) {
        this.#pending = { chunk, cb };
        return;
      }
      this.session.sendFrame(FrameType.DATA, 0, this.id, chunk.subarray(0, n));
      this.#sendWindow -= n;
      chunk = chunk.subarray(n);
    }
    this.session.afterDrain(cb);
  }

  /** Ends the request body. */
  end(): void {
    if (this.#sentEnd || this.#closed) return;
    this.session.sendFrame(FrameType.DATA, Flag.END_STREAM, this.id);
    this.markHeadEnded();
  }

  /** @internal The REQUEST frame itself ended the request. */
  markHeadEnded(): void {
    this.#sentEnd = true;
    if (this.#gotEnd) this.#finish();
  }

  // ---- the answer's flow control ----

  /** The listener's client cannot take more: stop returning credit, so the agent stops sending. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#queueCredit();
  }

  /** Abandons the exchange (the client went away, or the hub gave up): RESET unless it already ended. */
  cancel(code: number = ErrorCode.CANCEL): void {
    if (this.#closed) return;
    if (!(this.#sentEnd && this.#gotEnd)) this.session.sendReset(this.id, code);
    this.#close(new StreamResetError(code), false);
  }

  // ---- called by the session for frames on this stream ----

  /** @internal */
  onResponse(head: ResponseHead, end: boolean): void {
    if (this.response) throw new ProtocolError(`second RESPONSE on stream ${this.id}`);
    this.response = head;
    if (end) this.#gotEnd = true;
    this.listener.onResponse(head, end);
    if (end && this.#sentEnd) this.#finish();
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
    if (!this.#closed) this.listener.onData(payload, end);
    if (end && this.#sentEnd) this.#finish();
  }

  /** @internal Returns the credit this batch of frames used up (the session calls it after parsing a read). */
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
      this.write(pending.chunk, pending.cb);
    }
  }

  /** @internal */
  onReset(code: number): void {
    if (this.#closed) return;
    if (this.#gotEnd) {
      // The device answered in full and asks us to stop sending the request body: the response
      // stands (as RFC 9113 §8.1 lets a server do).
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

  #finish(): void {
    this.#close(undefined);
  }

  /** Ends the exchange; with `err` before the answer was complete, the listener hears it (unless it cancelled). */
  #close(err: Error | undefined, notify = true): void {
    if (this.#closed) return;
    this.#closed = true;
    this.session.forgetStream(this.id);
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.cb(err);
    if (err && notify && !this.#gotEnd) this.listener.onError(err);
    const onClose = this.onClose;
    this.onClose = undefined;
    onClose?.();
  }
}
