import { EventEmitter } from 'node:events';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { ErrorCode } from '../relay/protocol/frames.js';
import { StreamResetError, type TunnelStream } from '../relay/protocol/stream.js';
import { Exchange, type ServiceClient } from './exchange.js';
import { describeError, type Logger } from './log.js';

/** The device-info JSON goes into HELLO, whose frame the hub caps at 64 KiB during the handshake. */
const MAX_INFO_BYTES = 48 * 1024;

export interface ForwarderOptions {
  /** Base URL of the device's REST service (http: or https:), possibly with a path prefix. */
  api: string;
  /** Requests sent to the service at once (the http.Agent's maxSockets). */
  concurrency: number;
  /** Time the service has to send a response head. */
  requestTimeoutMs: number;
  log: Logger;
}

/**
 * Relays tunnel streams to the device's own REST service over kept-alive connections (at most
 * `concurrency` at once; see Exchange for one request), and fetches the device info for HELLO.
 */
export class Forwarder extends EventEmitter {
  readonly #agent: HttpAgent;
  readonly #request: typeof httpRequest;
  readonly #base: URL;
  readonly #prefix: string;
  readonly #inflight = new Set<TunnelStream>();
  /** Streams beyond this are refused; the hub is told `concurrency` and should queue before that. */
  readonly #hardLimit: number;
  readonly #client: ServiceClient;

  constructor(private readonly opts: ForwarderOptions) {
    super();
    this.#base = new URL(opts.api);
    const https = this.#base.protocol === 'https:';
    // Idle sockets up to the concurrency limit: a smaller pool closes and reopens connections to the
    // REST service whenever more requests than that are in flight (measured: half the device's CPU).
    const agentOptions = { keepAlive: true, maxSockets: opts.concurrency, maxFreeSockets: opts.concurrency };
    this.#agent = https ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
    this.#request = https ? httpsRequest : httpRequest;
    this.#prefix = this.#base.pathname.replace(/\/+$/, '');
    // Slack for streams the hub already counts as finished while their last frames are still in flight.
    this.#hardLimit = opts.concurrency * 2;
    this.#client = {
      send: (method, target, headers) => this.#request(this.#requestOptions(method, this.#prefix + target, headers)),
      host: this.#base.host,
      requestTimeoutMs: opts.requestTimeoutMs,
      log: opts.log,
    };
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  /** The kept-alive client of the REST service, shared with the LAN listener (lan/lan-server.ts). */
  get client(): ServiceClient {
    return this.#client;
  }

  /** Serves one relayed request; `maxHeadBytes` is the largest frame the hub takes (for the head). */
  handle(stream: TunnelStream, maxHeadBytes: number): void {
    const head = stream.request;
    const log = this.opts.log;
    stream.on('error', (err) => log.debug('relayed request stream ended early', { stream: stream.id, err: describeError(err) }));
    if (!head) {
      stream.destroy(new StreamResetError(ErrorCode.PROTOCOL_ERROR));
      return;
    }
    if (this.#inflight.size >= this.#hardLimit) {
      log.warn('relayed request refused: too many at once', { stream: stream.id, inflight: this.#inflight.size });
      stream.destroy(new StreamResetError(ErrorCode.REFUSED_STREAM));
      return;
    }
    this.#inflight.add(stream);
    stream.once('close', () => {
      this.#inflight.delete(stream);
      if (this.#inflight.size === 0) this.emit('idle');
    });

    new Exchange(stream, head, this.#client, maxHeadBytes).start();
  }

  /** GET {api}{path}: the device-info JSON object sent in HELLO. */
  fetchInfo(path: string, timeoutMs: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const req = this.#request(this.#requestOptions('GET', this.#prefix + path, { host: this.#base.host, accept: 'application/json' }));
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      const done = (err: Error | undefined, info?: Record<string, unknown>): void => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(info!);
      };
      req.on('error', (err) => done(err));
      req.on('response', (res: IncomingMessage) => {
        if (res.statusCode !== 200) {
          res.resume();
          done(new Error(`status ${res.statusCode ?? '?'}`));
          return;
        }
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_INFO_BYTES) res.destroy(new Error(`device info larger than ${MAX_INFO_BYTES} bytes`));
          else parts.push(chunk);
        });
        res.on('error', (err) => done(err));
        res.on('end', () => {
          try {
            const info: unknown = JSON.parse(Buffer.concat(parts).toString('utf8'));
            if (typeof info !== 'object' || info === null || Array.isArray(info)) throw new Error('device info is not a JSON object');
            done(undefined, info as Record<string, unknown>);
          } catch (err) {
            done(err as Error);
          }
        });
      });
      req.end();
    });
  }

  /** Resolves once no relayed request is in flight, or at the deadline (ms since epoch). */
  async drain(deadline: number): Promise<boolean> {
    if (this.#inflight.size === 0) return true;
    return new Promise((resolve) => {
      const onIdle = (): void => {
        clearTimeout(t);
        resolve(true);
      };
      const t = setTimeout(() => {
        this.off('idle', onIdle);
        resolve(this.#inflight.size === 0);
      }, Math.max(0, deadline - Date.now()));
      this.once('idle', onIdle);
    });
  }

  /** Resets every relayed request still running and closes idle connections to the service. */
  close(): void {
    for (const s of [...this.#inflight]) s.destroy(new StreamResetError(ErrorCode.CANCEL, 'agent stopping'));
    this.#agent.destroy();
  }

  #requestOptions(method: string, path: string, headers: RequestOptions['headers']): RequestOptions {
    return {
      protocol: this.#base.protocol,
      hostname: this.#base.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: this.#base.port || undefined,
      method,
      path,
      headers,
      agent: this.#agent,
      setHost: false,
    };
  }
}
