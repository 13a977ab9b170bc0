import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { ERRORS, errorBody, type ErrorCode as HubErrorCode } from '../errors.js';
import type { RequestHead } from '../relay/protocol/heads.js';
import type { TunnelStream } from '../relay/protocol/stream.js';
import { requestHeadersForService, responseHeadersForHub } from './headers.js';
import { describeError, type Logger } from './log.js';

/** What an exchange needs from the forwarder: how to reach the REST service. */
export interface ServiceClient {
  /** Starts a request to the REST service (path already prefixed); may throw for an invalid head. */
  send(method: string, target: string, headers: OutgoingHttpHeaders): ClientRequest;
  /** The service's host[:port], for the Host header. */
  host: string;
  requestTimeoutMs: number;
  log: Logger;
}

/** Methods that may be sent again when a kept-alive connection turns out to have been closed. */
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * One relayed request: the stream's readable side (the request body) flows into a local HTTP request;
 * the local response flows back into the stream's writable side, chunk by chunk, so server-sent events
 * and other streaming answers are never buffered whole.
 */
export class Exchange {
  #answered = false;
  #req: ClientRequest | undefined;
  #res: IncomingMessage | undefined;
  #timer: NodeJS.Timeout | undefined;
  #bodyBytes = 0;
  #bodyEnded = false;
  readonly #countBody = (c: Buffer): void => {
    this.#bodyBytes += c.length;
  };

  constructor(
    private readonly stream: TunnelStream,
    private readonly head: RequestHead,
    private readonly client: ServiceClient,
    /** The hub's frame limit: a RESPONSE head larger than this would close the whole tunnel. */
    private readonly maxHeadBytes: number,
  ) {}

  start(): void {
    const { stream, client } = this;
    stream.on('data', this.#countBody);
    stream.once('end', () => (this.#bodyEnded = true));
    stream.once('close', () => this.#onStreamClosed());
    this.#timer = setTimeout(() => {
      this.#fail('CR_ERR_DEVICE_TIMEOUT', `the REST service sent no response head within ${client.requestTimeoutMs} ms`);
      this.#req?.destroy();
    }, client.requestTimeoutMs);
    this.#send(true);
  }

  #send(mayRetry: boolean): void {
    const { stream, head, client } = this;
    let req: ClientRequest;
    try {
      req = client.send(head.method, head.target, requestHeadersForService(head.headers, client.host));
    } catch (err) {
      // Node refuses some heads outright (invalid characters in a header value or the path).
      this.#fail('CR_ERR_BAD_REQUEST', `request not forwardable: ${describeError(err)}`);
      return;
    }
    this.#req = req;
    req.on('error', (err) => {
      if (this.#answered) {
        // After the head, the response breaks too, and its pipeline resets the stream.
        client.log.debug('local request ended early', { stream: stream.id, err: describeError(err) });
        return;
      }
      // A kept-alive connection the service closed just as we reused it: the request never got there.
      if (mayRetry && req.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET' && this.#canResend()) {
        client.log.debug('kept-alive connection to the REST service was closed; retrying once', { stream: stream.id });
        this.#send(false);
        return;
      }
      this.#fail('CR_ERR_DEVICE_API_UNREACHABLE', describeError(err));
    });
    req.on('response', (res: IncomingMessage) => this.#onResponse(res));
    if (mayRetry) {
      // pipe(), not pipeline(): a local failure before the response head must become a 502 answer
      // on the stream, not a reset of it.
      stream.pipe(req);
    } else {
      req.end();
    }
  }

  #canResend(): boolean {
    return RETRYABLE.has(this.head.method) && this.#bodyEnded && this.#bodyBytes === 0;
  }

  #onResponse(res: IncomingMessage): void {
    const { stream, head, client } = this;
    clearTimeout(this.#timer);
    this.#res = res;
    if (this.#answered || stream.destroyed) {
      res.destroy();
      return;
    }
    const status = res.statusCode ?? 502;
    const noBody = head.method === 'HEAD' || status === 204 || status === 304 || res.headers['content-length'] === '0';
    const headers = responseHeadersForHub(res.rawHeaders);
    const size = headers.reduce((n, [k, v]) => n + 4 + Buffer.byteLength(k, 'latin1') + Buffer.byteLength(v, 'latin1'), 4);
    if (size > this.maxHeadBytes) {
      res.destroy();
      this.#fail('CR_ERR_DEVICE_API_UNREACHABLE', `response head of ${size} bytes exceeds the tunnel frame limit of ${this.maxHeadBytes}`);
      return;
    }
    try {
      stream.respond({ status, headers }, noBody);
    } catch (err) {
      // A head the tunnel cannot encode (a header longer than its u16 length field).
      res.destroy();
      this.#fail('CR_ERR_DEVICE_API_UNREACHABLE', `response head not relayable: ${describeError(err)}`);
      return;
    }
    this.#answered = true;
    if (noBody) {
      res.resume();
      stream.end();
      return;
    }
    // pipe() with explicit ends, not pipeline(): on Node 20 every pipeline() builds and aborts an
    // AbortController (a DOMException with a stack trace per response), measured at 14 % of agent CPU.
    // A local failure resets the stream; a reset stream (client gone) aborts the response (#onStreamClosed).
    res.pipe(stream);
    res.once('error', () => undefined); // reported through 'close' below
    res.once('close', () => {
      if (res.complete || stream.destroyed) return;
      client.log.debug('relayed response ended early', { stream: stream.id });
      stream.destroy(new Error('the REST service response ended early'));
    });
  }

  #fail(code: HubErrorCode, detail: string): void {
    if (this.#answered) return;
    this.#answered = true;
    clearTimeout(this.#timer);
    const { stream, head } = this;
    this.client.log.warn('relayed request failed', { stream: stream.id, method: head.method, target: head.target, code, detail });
    if (stream.destroyed) return;
    stream.unpipe();
    stream.off('data', this.#countBody);
    const body = Buffer.from(errorBody(code, detail));
    stream.respond({ status: ERRORS[code].status, headers: [['content-type', 'application/json'], ['content-length', String(body.length)]] });
    stream.end(body);
    // A RESET after our END_STREAM stops a request body nobody will read; the hub keeps the answer.
    stream.once('finish', () => {
      if (!stream.readableEnded) stream.destroy();
    });
  }

  #onStreamClosed(): void {
    clearTimeout(this.#timer);
    if (!this.#answered) this.client.log.debug('relayed request cancelled before the response head', { stream: this.stream.id });
    this.#answered = true;
    // The client went away (or the tunnel dropped): abort the local request too.
    const req = this.#req;
    if (req && !req.destroyed && !this.#res?.complete) req.destroy();
  }
}
