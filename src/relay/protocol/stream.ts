import { Duplex } from 'node:stream';
import { ErrorCode, StreamResetError } from './frames.js';
import type { ChannelListener, TunnelChannel } from './channel.js';
import type { RequestHead, ResponseHead } from './heads.js';

export { StreamResetError } from './frames.js';

/**
 * One exchange on a tunnel as a Node Duplex, over the TunnelChannel that carries it: the writable side
 * sends DATA frames (the request body on the hub, the response body on the agent); the readable side
 * yields the peer's DATA frames. For tools and tests that want stream semantics (`pipe`, async
 * iteration); the relay itself uses the channel directly.
 *
 * Flow control is the channel's: credit goes back while the readable buffer is below its high-water
 * mark, and stops (the channel pauses) when it is full, until the reader asks for more.
 */
export class TunnelStream extends Duplex implements ChannelListener {
  /** The response head: set on the hub side when RESPONSE arrives (also emitted as 'response'). */
  response?: ResponseHead;
  readonly #channel: TunnelChannel;

  constructor(channel: TunnelChannel) {
    super({ allowHalfOpen: true });
    this.#channel = channel;
    channel.listener = this;
    // Over without an error: on the hub, a RESET after the complete answer ends the upload; the
    // writable side ends with it, so the stream finishes.
    channel.onClose = () => {
      if (!this.writableEnded && !this.destroyed) this.end();
    };
  }

  get id(): number {
    return this.#channel.id;
  }

  /** The request head: set on the agent side when the stream opens. */
  get request(): RequestHead | undefined {
    return this.#channel.request;
  }

  /** Agent side: send the response head; with `end`, the response has no body. */
  respond(head: ResponseHead, end = false): void {
    this.#channel.respond(head, end);
    // End the writable side too, so the stream finishes (and emits 'close') once the peer's side ends.
    if (end && !this.writableEnded) this.end();
  }

  /** @internal The request had no body: its REQUEST frame ended it. */
  peerEndedAtOpen(): void {
    this.push(null);
  }

  /** @internal The REQUEST frame ended this side: the writable side has nothing to send. */
  headEndedWritable(): void {
    if (!this.writableEnded) this.end();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#channel.write(chunk, cb)) cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#channel.end();
    cb();
  }

  override _read(): void {
    this.#channel.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#channel.cancel(err instanceof StreamResetError ? err.code : ErrorCode.CANCEL);
    cb(err);
  }

  // ---- the channel's listener ----

  /** @internal */
  onResponse(head: ResponseHead, end: boolean): void {
    this.response = head;
    this.emit('response', head);
    if (end && !this.destroyed) this.push(null);
  }

  /** @internal */
  onData(chunk: Buffer, end: boolean): void {
    if (this.destroyed) return;
    if (chunk.length > 0 && !this.push(chunk)) this.#channel.pause();
    if (end) this.push(null);
  }

  /** @internal The peer reset the exchange or the connection closed. */
  onError(err: Error): void {
    this.destroy(err);
  }
}
