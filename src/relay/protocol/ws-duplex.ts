import { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';

// ws readyState values (WebSocket.CONNECTING etc.), inlined so this module needs only ws's types.
const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

/**
 * Writes batched into one websocket message stop growing at this size. A single chunk is never larger
 * than one frame's payload (the session writes a large payload apart from its header), so no message
 * exceeds max(WS_MAX_MESSAGE_BYTES, the receiver's maxFrameBytes): a receiver's `maxPayload` of
 * maxFrameBytes + WS_MAX_MESSAGE_BYTES is always enough.
 */
export const WS_MAX_MESSAGE_BYTES = 64 * 1024;

/** RFC 6455 §7.4.1: 1000 normal closure, 1001 going away, 1005 no status (a close frame without a code). */
const CLEAN_CLOSE = new Set([1000, 1001, 1005]);

/**
 * Adapts a `ws` WebSocket (client or server side) to the byte Duplex a TunnelSession reads and writes.
 *
 * - Each binary message is pushed as bytes; message boundaries carry no meaning.
 * - Writes made in one tick (the session corks them) go out as ONE binary message (several when they
 *   add up to more than WS_MAX_MESSAGE_BYTES).
 * - A text message is a protocol error: the duplex is destroyed with an error.
 * - Backpressure: when the reader falls behind, the websocket (its socket) is paused.
 * - `end()` closes the websocket with 1000; `destroy()` terminates it; the websocket closing ends the
 *   readable side (clean close) or destroys the duplex with an error (abnormal close).
 */
export function wsDuplex(ws: WebSocket): Duplex {
  return new WsDuplex(ws);
}

class WsDuplex extends Duplex {
  readonly #ws: WebSocket;

  constructor(ws: WebSocket) {
    // Closing the websocket closes both directions: there is no half-open websocket.
    super({ allowHalfOpen: false });
    this.#ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: RawData, isBinary: boolean) => this.#onMessage(data, isBinary));
    ws.on('error', (err: Error) => this.destroy(err));
    ws.on('close', (code: number, reason: Buffer) => this.#onClose(code, reason));
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (this.destroyed) return;
    if (!isBinary) {
      this.destroy(new Error('text message on a binary tunnel websocket'));
      return;
    }
    const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (buf.length === 0) return;
    if (!this.push(buf)) this.#ws.pause();
  }

  #onClose(code: number, reason: Buffer): void {
    if (this.destroyed) return;
    if (!CLEAN_CLOSE.has(code)) {
      const why = reason.length > 0 ? `: ${reason.toString('utf8')}` : '';
      this.destroy(new Error(`websocket closed abnormally (${code}${why})`));
      return;
    }
    this.push(null);
    // A reader in flowing mode has everything already; one that is not reading must not keep us open.
    if (this.readableLength === 0) this.destroy();
  }

  override _read(): void {
    if (this.#ws.isPaused) this.#ws.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#send([chunk], cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    const messages: Buffer[][] = [[]];
    let size = 0;
    for (const { chunk } of chunks) {
      if (size > 0 && size + chunk.length > WS_MAX_MESSAGE_BYTES) {
        messages.push([]);
        size = 0;
      }
      messages.at(-1)!.push(chunk);
      size += chunk.length;
    }
    this.#send(messages.map((m) => (m.length === 1 ? m[0]! : Buffer.concat(m))), cb);
  }

  /** Sends the messages in order; `cb` runs once ws has taken the last one, or on the first error. */
  #send(messages: Buffer[], cb: (err?: Error | null) => void): void {
    const ws = this.#ws;
    if (ws.readyState === CONNECTING) {
      const onOpen = (): void => {
        ws.off('close', onClose);
        this.#send(messages, cb);
      };
      const onClose = (): void => {
        ws.off('open', onOpen);
        cb(new Error('websocket closed before it opened'));
      };
      ws.once('open', onOpen);
      ws.once('close', onClose);
      return;
    }
    if (ws.readyState !== OPEN) {
      cb(new Error('websocket is not open'));
      return;
    }
    // ws's callback fires once it has handed the message to the socket: that is our backpressure.
    let pending = messages.length;
    let failed = false;
    for (const m of messages) {
      ws.send(m, { binary: true }, (err) => {
        if (failed) return;
        if (err) {
          failed = true;
          cb(err);
        } else if (--pending === 0) cb(null);
      });
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    const ws = this.#ws;
    if (ws.readyState === OPEN) ws.close(1000);
    else if (ws.readyState === CONNECTING) ws.terminate();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.#ws.readyState !== CLOSED) this.#ws.terminate();
    cb(err);
  }
}
