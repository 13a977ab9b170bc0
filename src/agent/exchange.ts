import { PassThrough } from 'node:stream';
import { ERRORS, errorBody, type ErrorCode as HubErrorCode } from '../errors.js';
import type { HeaderList, RequestHead } from '../relay/protocol/heads.js';
import type { TunnelStream } from '../relay/protocol/stream.js';
import type { CallHandler, ServiceCall, ServiceClient } from './service-client.js';

/**
 * One relayed request: the stream's readable side (the request body) goes to the REST service; the
 * service's response goes back into the stream's writable side, chunk by chunk, so server-sent events
 * and other streaming answers are never buffered whole, and a slow hub pauses the service.
 */
export class Exchange implements CallHandler {
  #answered = false;
  #noBody = false;
  #call: ServiceCall | undefined;
  #drainWaiter: ServiceCall | undefined;
  readonly #onDrain = (): void => {
    const call = this.#drainWaiter;
    this.#drainWaiter = undefined;
    call?.resume();
  };

  constructor(
    private readonly stream: TunnelStream,
    private readonly head: RequestHead,
    private readonly client: ServiceClient,
    /** The hub's frame limit: a RESPONSE head larger than this would close the whole tunnel. */
    private readonly maxHeadBytes: number,
  ) {}

  start(): void {
    const { stream, head } = this;
    stream.once('close', () => this.#onStreamClosed());
    let body: PassThrough | null = null;
    if (stream.peerEnded) {
      // No request body: let the readable side end, so the stream closes once the answer is sent.
      stream.resume();
    } else {
      // A body of its own for the service call: if the call fails, its body is destroyed, and the
      // tunnel stream must stay usable for the error answer.
      body = new PassThrough();
      stream.pipe(body);
    }
    this.#call = this.client.call(head.method, head.target, head.headers, body, this);
  }

  onHead(status: number, headers: HeaderList, call: ServiceCall): void {
    const { stream, head } = this;
    if (this.#answered || stream.destroyed) {
      call.abort();
      return;
    }
    this.#noBody = head.method === 'HEAD' || status === 204 || status === 304 || contentLengthZero(headers);
    let size = 4;
    for (const [k, v] of headers) size += 4 + k.length + v.length;
    if (size > this.maxHeadBytes) {
      call.abort();
      this.#fail('CR_ERR_DEVICE_API_UNREACHABLE', `response head of ${size} bytes exceeds the tunnel frame limit of ${this.maxHeadBytes}`);
      return;
    }
    try {
      stream.respond({ status, headers }, this.#noBody);
    } catch (err) {
      // A head the tunnel cannot encode (a header longer than its u16 length field).
      call.abort();
      this.#fail('CR_ERR_DEVICE_API_UNREACHABLE', `response head not relayable: ${(err as Error).message}`);
      return;
    }
    this.#answered = true;
  }

  onData(chunk: Buffer, call: ServiceCall): void {
    if (this.#noBody || this.stream.destroyed) return;
    if (!this.stream.write(chunk)) {
      // The hub (or its client) is slower than the service: hold the service back.
      call.pause();
      this.#drainWaiter = call;
      this.stream.once('drain', this.#onDrain);
    }
  }

  onEnd(): void {
    if (!this.#noBody && !this.stream.destroyed) this.stream.end();
  }

  onFail(code: HubErrorCode, detail: string, afterHead: boolean): void {
    if (afterHead) {
      this.client.log.debug('relayed response ended early', { stream: this.stream.id, detail });
      this.stream.destroy(new Error('the REST service response ended early'));
      return;
    }
    this.#fail(code, detail);
  }

  #fail(code: HubErrorCode, detail: string): void {
    if (this.#answered) return;
    this.#answered = true;
    const { stream, head } = this;
    this.client.log.warn('relayed request failed', { stream: stream.id, method: head.method, target: head.target, code, detail });
    if (stream.destroyed) return;
    stream.unpipe();
    const body = Buffer.from(errorBody(code, detail));
    stream.respond({ status: ERRORS[code].status, headers: [['content-type', 'application/json'], ['content-length', String(body.length)]] });
    stream.end(body);
    // A RESET after our END_STREAM stops a request body nobody will read; the hub keeps the answer.
    stream.once('finish', () => {
      if (!stream.readableEnded) stream.destroy();
    });
  }

  #onStreamClosed(): void {
    if (!this.#answered) this.client.log.debug('relayed request cancelled before the response head', { stream: this.stream.id });
    this.#answered = true;
    // The client went away or the tunnel dropped: the call ends too (a no-op once the answer is complete;
    // a head-only answer is complete as far as the service goes, and its connection stays reusable).
    if (!this.#noBody) this.#call?.abort();
  }
}

function contentLengthZero(headers: HeaderList): boolean {
  for (const [k, v] of headers) if (k === 'content-length') return v === '0';
  return false;
}
