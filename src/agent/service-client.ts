import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { ErrorCode } from '../errors.js';
import type { HeaderList } from '../relay/protocol/heads.js';
import { requestHeadersForService, responseHeadersForHub } from './headers.js';
import { describeError, type Logger } from './log.js';

/** What one call to the REST service reports, in order: a head, body chunks, the end; or a failure. */
export interface CallHandler {
  /** The response head (hop-by-hop fields already removed). */
  onHead(status: number, headers: HeaderList, call: ServiceCall): void;
  /** A chunk of the response body; `call.pause()` holds the next ones back until `call.resume()`. */
  onBody(chunk: Buffer, call: ServiceCall): void;
  onEnd(): void;
  /**
   * The call failed: before the head with the hub error code a client should see; after the head the
   * response broke off (`afterHead`) and only cutting it short is left.
   */
  onFail(code: ErrorCode, detail: string, afterHead: boolean): void;
}

export interface ServiceClientOptions {
  /** Base URL of the device's REST service (http: or https:), possibly with a path prefix. */
  api: string;
  /** Connections to the service at once; further calls wait for a free one. */
  concurrency: number;
  /** Time the service has to send a response head. */
  requestTimeoutMs: number;
  log: Logger;
}

/** Methods that may be sent again when a kept-alive connection turns out to have been closed. */
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS']);
/** undici's codes for a connection that closed or broke under a request. */
const SOCKET_CLOSED = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/**
 * The kept-alive client of the device's REST service, shared by the tunnel (exchange.ts) and the LAN
 * listener: an undici Pool driven through `dispatch`, the cheapest way Node has to make an HTTP call
 * (measured at about half the CPU of `http.request` per relayed request).
 */
export class ServiceClient {
  /** The service's host[:port], for the Host header. */
  readonly host: string;
  readonly requestTimeoutMs: number;
  readonly log: Logger;
  readonly #pool: Pool;
  readonly #prefix: string;

  constructor(opts: ServiceClientOptions) {
    const base = new URL(opts.api);
    this.host = base.host;
    this.requestTimeoutMs = opts.requestTimeoutMs;
    this.log = opts.log;
    this.#prefix = base.pathname.replace(/\/+$/, '');
    // Idle connections stay open up to the concurrency limit: closing and reopening them whenever more
    // calls than a smaller pool are in flight was measured at half the device's CPU.
    this.#pool = new Pool(base.origin, {
      connections: opts.concurrency,
      pipelining: 1,
    });
  }

  /**
   * Calls the service: `target` is the device-side path and query; `body` is null when the request has
   * none. Returns the call, which the caller aborts when its own client goes away.
   */
  call(method: string, target: string, headers: HeaderList, body: Readable | null, handler: CallHandler): ServiceCall {
    const call = new ServiceCall(this.#pool, handler, body === null && RETRYABLE.has(method));
    call.start({
      method: method as Dispatcher.HttpMethod,
      path: this.#prefix + target,
      headers: requestHeadersForService(headers, this.host),
      body,
      headersTimeout: this.requestTimeoutMs,
      bodyTimeout: 0, // an event stream may be quiet for long; the client or the hub ends it
    });
    return call;
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}

/** One call in flight: an undici dispatch handler that reports to a CallHandler. */
export class ServiceCall implements Dispatcher.DispatchHandler {
  #controller: Dispatcher.DispatchController | undefined;
  #opts: Dispatcher.DispatchOptions | undefined;
  #headSeen = false;
  #done = false;
  #aborted = false;
  #mayRetry: boolean;

  constructor(
    private readonly pool: Dispatcher,
    private readonly handler: CallHandler,
    mayRetry: boolean,
  ) {
    this.#mayRetry = mayRetry;
  }

  /** @internal */
  start(opts: Dispatcher.DispatchOptions): void {
    this.#opts = opts;
    this.pool.dispatch(opts, this);
  }

  /** Stops the call (the client went away); the handler hears nothing more. */
  abort(): void {
    if (this.#done) return;
    this.#done = true;
    this.#aborted = true;
    this.#controller?.abort(new Error('the client went away'));
  }

  pause(): void {
    this.#controller?.pause();
  }

  resume(): void {
    this.#controller?.resume();
  }

  // ---- undici's side ----

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    // Aborted while it waited for a free connection: it goes no further.
    if (this.#aborted) controller.abort(new Error('the client went away'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number): void {
    if (this.#done || status < 200) return;
    this.#headSeen = true;
    this.handler.onHead(status, responseHeadersForHub(Array.isArray(controller.rawHeaders) ? controller.rawHeaders : []), this);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#done) this.handler.onBody(chunk, this);
  }

  onResponseEnd(): void {
    if (this.#done) return;
    this.#done = true;
    this.handler.onEnd();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#done) return;
    const code = (err as { code?: string }).code ?? '';
    if (!this.#headSeen && this.#mayRetry && SOCKET_CLOSED.has(code)) {
      // A kept-alive connection the service closed just as we reused it: the request never got there.
      this.#mayRetry = false;
      this.#controller = undefined;
      this.pool.dispatch(this.#opts!, this);
      return;
    }
    this.#done = true;
    if (this.#headSeen) this.handler.onFail('CR_ERR_DEVICE_API_UNREACHABLE', describeError(err), true);
    else if (code === 'UND_ERR_HEADERS_TIMEOUT') this.handler.onFail('CR_ERR_DEVICE_TIMEOUT', `the REST service sent no response head within ${(this.#opts!.headersTimeout ?? 0)} ms`, false);
    else if (code === 'UND_ERR_INVALID_ARG') this.handler.onFail('CR_ERR_BAD_REQUEST', `request not forwardable: ${err.message}`, false);
    else this.handler.onFail('CR_ERR_DEVICE_API_UNREACHABLE', describeError(err), false);
  }
}
