import { Duplex } from 'node:stream';
import { ErrorCode, ERROR_CODE_NAMES, Flag, FrameType, ProtocolError, u32 } from './frames.js';
import type { RequestHead, ResponseHead } from './heads.js';
import { encodeResponseHead } from './heads.js';
import type { TunnelSession } from './session.js';

/** A stream ended by the peer's RESET, or by the connection closing. */
export class StreamResetError extends Error {
  override readonly name = 'StreamResetError';
  constructor(readonly code: number, message?: string) {
    super(message ?? `stream reset: ${ERROR_CODE_NAMES[code] ?? code}`);
  }
}

/**
 * One request/response exchange on a tunnel. The writable side sends DATA frames (the request body on
 * the hub, the response body on the agent); the readable side yields the peer's DATA frames.
 *
 * Flow control: the peer may have at most `windowBytes` of unconsumed data in flight on this stream.
 * Credit (WINDOW frames) is returned only as the reader consumes data, so a slow consumer (say, an HTTP
 * client on a slow link) stops the sender instead of making anyone buffer without bound.
 */
export class TunnelStream extends Duplex {
  /** The request head: set on the agent side when the stream opens. */
  request?: RequestHead;
  /** The response head: set on the hub side when RESPONSE arrives (also emitted as 'response'). */
  response?: ResponseHead;

  #sendWindow: number;
  #recvWindow: number;
  readonly #windowBytes: number;
  #pushed = 0;
  #credited = 0;
  #pending: { chunk: Buffer; cb: (err?: Error | null) => void } | undefined;
  #sentEnd = false;
  #gotEnd = false;
  #closed = false;

  constructor(
    readonly id: number,
    private readonly session: TunnelSession,
    sendWindow: number,
    windowBytes: number,
  ) {
    super({ allowHalfOpen: true });
    this.#sendWindow = sendWindow;
    this.#recvWindow = windowBytes;
    this.#windowBytes = windowBytes;
  }

  /** Agent side: send the response head; with `end`, the response has no body. */
  respond(head: ResponseHead, end = false): void {
    if (this.#closed) return;
    this.session.sendFrame(FrameType.RESPONSE, end ? Flag.END_STREAM : 0, this.id, encodeResponseHead(head));
    if (end) this.markHeadEnded();
  }

  /** Marks the writable side as ended by the head frame itself (no body follows). */
  markHeadEnded(): void {
    this.#markSentEnd();
    // End the writable side too, so the stream finishes (and emits 'close') once the peer's side ends.
    if (!this.writableEnded) this.end();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#send(chunk, cb);
  }

  #send(chunk: Buffer, cb: (err?: Error | null) => void): void {
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

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.#sentEnd && !this.#closed) {
      this.session.sendFrame(FrameType.DATA, Flag.END_STREAM, this.id);
      this.#markSentEnd();
    }
    cb();
  }

  override _read(): void {
    this.#creditConsumed();
  }

  /**
   * Every way of consuming (flowing 'data', pipe, async iteration, read()) goes through read(), so
   * credit is returned here. _read alone is not enough: Node calls it once and then not again until
   * the next push, and a sender waiting for credit pushes nothing, so both sides would wait forever
   * (seen with windows below about 24 KiB, where the one _read came before the reader took the data).
   */
  override read(size?: number): ReturnType<Duplex['read']> {
    const chunk: unknown = super.read(size);
    this.#creditConsumed();
    return chunk;
  }

  #creditConsumed(): void {
    const consumed = this.#pushed - this.readableLength - this.#credited;
    // Credit in batches, but always once the buffer is empty, so a blocked sender is released.
    if (consumed > 0 && !this.#gotEnd && !this.#closed && (consumed >= this.#windowBytes / 4 || this.readableLength === 0)) {
      this.#credited += consumed;
      this.#recvWindow += consumed;
      this.session.sendFrame(FrameType.WINDOW, 0, this.id, u32(consumed));
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.#closed) {
      this.#closed = true;
      if (!(this.#sentEnd && this.#gotEnd)) this.session.sendReset(this.id, err instanceof StreamResetError ? err.code : ErrorCode.CANCEL);
      this.session.forgetStream(this.id);
    }
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.cb(err ?? new StreamResetError(ErrorCode.CANCEL));
    cb(err);
  }

  // ---- called by the session for frames on this stream ----

  /** @internal */
  onResponse(head: ResponseHead, end: boolean): void {
    if (this.response) throw new ProtocolError(`second RESPONSE on stream ${this.id}`);
    this.response = head;
    this.emit('response', head);
    if (end) this.#endReadable();
  }

  /** @internal */
  onData(payload: Buffer, end: boolean): void {
    if (this.#gotEnd) throw new ProtocolError(`DATA after END_STREAM on stream ${this.id}`);
    if (payload.length > this.#recvWindow) {
      throw new ProtocolError(`stream ${this.id} sent ${payload.length} bytes with a window of ${this.#recvWindow}`, ErrorCode.FLOW_CONTROL_ERROR);
    }
    if (payload.length > 0) {
      this.#recvWindow -= payload.length;
      this.#pushed += payload.length;
      if (!this.destroyed) this.push(payload);
    }
    if (end) this.#endReadable();
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
      this.#send(pending.chunk, pending.cb);
    }
  }

  /** @internal */
  onReset(code: number): void {
    if (this.#gotEnd && this.session.role === 'hub') {
      // The device answered in full and asks us to stop sending the request body: the response
      // stands (as RFC 9113 §8.1 lets a server do). On the agent a RESET always means the request
      // was abandoned, so it falls through and fails the stream: the agent must stop its work.
      this.#closed = true;
      this.#sentEnd = true;
      this.session.forgetStream(this.id);
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.cb();
      if (!this.writableEnded) this.end();
      return;
    }
    this.#closed = true;
    this.session.forgetStream(this.id);
    this.destroy(new StreamResetError(code));
  }

  /** @internal The connection is gone. */
  onSessionClosed(err: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.destroy(err);
  }

  #endReadable(): void {
    this.#gotEnd = true;
    if (!this.destroyed) this.push(null);
    if (this.#sentEnd) this.#finishExchange();
  }

  #markSentEnd(): void {
    this.#sentEnd = true;
    if (this.#gotEnd) this.#finishExchange();
  }

  #finishExchange(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.session.forgetStream(this.id);
  }
}
