import type { TunnelChannel } from '../relay/protocol/channel.js';
import { ErrorCode, StreamResetError } from '../relay/protocol/frames.js';
import type { ResponseHead } from '../relay/protocol/heads.js';
import type { RequestStream, ResponseListener } from '../relay/router.js';

/**
 * Edge side of one relayed exchange on a node link: the front's stream (`link`) joined to the device's
 * (a LocalTunnelRouter stream), bodies piped both ways under both windows. A side that cannot take
 * more holds the other back by withholding credit (pause), so what waits here is at most one window
 * per direction: the peer cannot send past the credit it was given.
 */
export class EdgePipe implements ResponseListener {
  #device: RequestStream | undefined;
  /** Request body from the front waiting for the device's stream (queued, or its window full). */
  readonly #up: Buffer[] = [];
  #upEnded = false;
  #upEndSent = false;
  #upBlocked = false;
  /** Response body from the device waiting for the front's window. */
  readonly #down: Buffer[] = [];
  #downEnded = false;
  #downBlocked = false;
  #over = false;
  /** Called when the front abandons the exchange (RESET, or the link closed). */
  onFrontGone: (() => void) | undefined;

  constructor(private readonly link: TunnelChannel) {
    link.listener = { onData: (chunk, end) => this.#fromFront(chunk, end), onError: () => this.#frontGone() };
    if (link.peerEnded) this.#upEnded = true;
  }

  /** The front went away or the exchange is over on its side. */
  get over(): boolean {
    return this.#over || this.link.closed;
  }

  /** The device's stream is open: what the front sent so far goes up now. */
  started(device: RequestStream): void {
    this.#device = device;
    this.link.resume();
    this.#pumpUp();
  }

  /** Queued at the device: nothing is credited to the front until the stream starts. */
  hold(): void {
    this.link.pause();
  }

  // ---- front → device ----

  #fromFront(chunk: Buffer, end: boolean): void {
    if (chunk.length > 0) this.#up.push(chunk);
    if (end) this.#upEnded = true;
    this.#pumpUp();
  }

  #pumpUp(): void {
    const device = this.#device;
    if (device === undefined || this.#upBlocked || this.#over) return;
    while (this.#up.length > 0) {
      if (!device.write(this.#up.shift()!, this.#upWritten)) {
        this.#upBlocked = true;
        this.link.pause();
        return;
      }
    }
    if (this.#upEnded && !this.#upEndSent) {
      this.#upEndSent = true;
      device.end();
    }
  }

  readonly #upWritten = (): void => {
    this.#upBlocked = false;
    this.link.resume();
    this.#pumpUp();
  };

  #frontGone(): void {
    if (this.#over) return;
    this.#over = true;
    this.#up.length = 0;
    this.#down.length = 0;
    this.#device?.cancel();
    this.onFrontGone?.();
  }

  // ---- device → front (the device stream's listener) ----

  onResponse(head: ResponseHead, end: boolean): void {
    if (this.over) return;
    this.link.respond(head, end);
    if (end) this.#over = true;
  }

  onData(chunk: Buffer, end: boolean): void {
    if (this.over) return;
    if (chunk.length > 0) this.#down.push(chunk);
    if (end) this.#downEnded = true;
    this.#pumpDown();
  }

  #pumpDown(): void {
    if (this.#downBlocked || this.link.closed) return;
    while (this.#down.length > 0) {
      if (!this.link.write(this.#down.shift()!, this.#downWritten)) {
        this.#downBlocked = true;
        this.#device?.pause();
        return;
      }
    }
    if (this.#downEnded) {
      this.#over = true;
      this.link.end();
    }
  }

  readonly #downWritten = (): void => {
    this.#downBlocked = false;
    this.#device?.resume();
    this.#pumpDown();
  };

  /** The device reset the exchange or its tunnel went away: the front hears a RESET with the same code. */
  onError(err: Error): void {
    if (this.over) return;
    this.#over = true;
    this.link.cancel(err instanceof StreamResetError ? err.code : ErrorCode.CANCEL);
  }
}
