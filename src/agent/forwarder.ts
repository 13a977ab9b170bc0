import { EventEmitter } from 'node:events';
import { ErrorCode } from '../relay/protocol/frames.js';
import type { TunnelChannel } from '../relay/protocol/channel.js';
import { Exchange } from './exchange.js';
import type { Logger } from './log.js';
import { ServiceClient } from './service-client.js';

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
  readonly #inflight = new Set<TunnelChannel>();
  /** Streams beyond this are refused; the hub is told `concurrency` and should queue before that. */
  readonly #hardLimit: number;
  readonly #client: ServiceClient;

  constructor(private readonly opts: ForwarderOptions) {
    super();
    this.#client = new ServiceClient(opts);
    // Slack for streams the hub already counts as finished while their last frames are still in flight.
    this.#hardLimit = opts.concurrency * 2;
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  /** The kept-alive client of the REST service, shared with the LAN listener (lan/lan-server.ts). */
  get client(): ServiceClient {
    return this.#client;
  }

  /** Serves one relayed request; `maxHeadBytes` is the largest frame the hub takes (for the head). */
  handle(channel: TunnelChannel, maxHeadBytes: number): void {
    const head = channel.request;
    const log = this.opts.log;
    if (!head) {
      channel.cancel(ErrorCode.PROTOCOL_ERROR);
      return;
    }
    if (this.#inflight.size >= this.#hardLimit) {
      log.warn('relayed request refused: too many at once', { stream: channel.id, inflight: this.#inflight.size });
      channel.cancel(ErrorCode.REFUSED_STREAM);
      return;
    }
    this.#inflight.add(channel);
    const exchange = new Exchange(channel, head, this.#client, maxHeadBytes);
    channel.onClose = () => {
      exchange.closed();
      this.#inflight.delete(channel);
      if (this.#inflight.size === 0) this.emit('idle');
    };
    exchange.start();
  }

  /** GET {api}{path}: the device-info JSON object sent in HELLO. */
  fetchInfo(path: string, timeoutMs: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      let size = 0;
      let settled = false;
      const done = (err: Error | undefined, info?: Record<string, unknown>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(info!);
      };
      const call = this.#client.call('GET', path, [['accept', 'application/json']], null, {
        onHead: (status, _headers, c) => {
          if (status !== 200) {
            c.abort();
            done(new Error(`status ${status}`));
          }
        },
        onBody: (chunk, c) => {
          size += chunk.length;
          if (size > MAX_INFO_BYTES) {
            c.abort();
            done(new Error(`device info larger than ${MAX_INFO_BYTES} bytes`));
          } else parts.push(chunk);
        },
        onEnd: () => {
          try {
            const info: unknown = JSON.parse(Buffer.concat(parts).toString('utf8'));
            if (typeof info !== 'object' || info === null || Array.isArray(info)) throw new Error('device info is not a JSON object');
            done(undefined, info as Record<string, unknown>);
          } catch (err) {
            done(err as Error);
          }
        },
        onFail: (_code, detail) => done(new Error(detail)),
      });
      const timer = setTimeout(() => {
        call.abort();
        done(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
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
    for (const ch of [...this.#inflight]) ch.cancel(ErrorCode.CANCEL);
    void this.#client.close();
  }
}
