import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCode } from '../errors.js';
import { lingerOverRefusedBody } from '../http/reply.js';
import { responseHeadersForClient } from './headers.js';
import type { ResponseHead } from './protocol/heads.js';
import type { RelayContext } from './relay-context.js';
import type { CachePlan, CacheSink } from './relay-cache.js';
import { RouteError, type RequestStream, type ResponseListener } from './router.js';

/**
 * One relayed request once its stream is open: the client's body goes up the channel, the device's
 * answer comes down it into the client's response (through the cache when the plan says so).
 */
export class RelayedRequest implements ResponseListener {
  #channel: RequestStream | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The client's answer is settled: sent, failed, or the client went away. */
  #over = false;
  #clientGone = false;
  /** The response head went to the client; body chunks follow it. */
  #streaming = false;
  #sink: CacheSink | undefined;
  /** Body chunks that arrived while the cache decided asynchronously what to do with the head. */
  #early: Buffer[] | undefined;
  #earlyEnd = false;
  #down = 0;

  constructor(
    private readonly ctx: RelayContext,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly started: bigint,
    private readonly deviceId: string,
    private readonly method: string,
    private readonly target: string,
    private readonly plan: CachePlan | undefined,
    private readonly deviceToken: { userId: string; token: string } | undefined,
  ) {}

  start(channel: RequestStream, withBody: boolean): void {
    this.#channel = channel;
    const { res, ctx } = this;
    res.once('close', this.#onClientClose);
    if (!this.#over) this.#timer = setTimeout(this.#onTimeout, ctx.opts.requestTimeoutMs);
    if (withBody) this.#sendBody(channel);
  }

  readonly #onClientClose = (): void => {
    if (this.res.writableFinished) return;
    this.#clientGone = true;
    this.#over = true;
    clearTimeout(this.#timer);
    this.#channel?.cancel();
  };

  readonly #onTimeout = (): void => {
    this.#channel?.cancel();
    this.#failWith('CR_ERR_DEVICE_TIMEOUT', `no answer within ${this.ctx.opts.requestTimeoutMs} ms`);
  };

  readonly #onDrain = (): void => this.#channel?.resume();

  #sendBody(channel: RequestStream): void {
    const { req, ctx } = this;
    const max = ctx.opts.maxRequestBodyBytes;
    let seen = 0;
    let refused = false;
    const resume = (): void => {
      req.resume();
    };
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      seen += chunk.length;
      if (seen > max) {
        refused = true;
        channel.cancel();
        this.#failWith('CR_ERR_BODY_TOO_LARGE', `limit is ${max} bytes`);
        lingerOverRefusedBody(req); // the rest is read and dropped
        return;
      }
      // Backpressure: the next chunk waits until the tunnel took this one (within the stream's window).
      if (!channel.write(chunk, resume)) req.pause();
    });
    req.once('end', () => {
      if (!refused) channel.end();
      ctx.deps.metrics.relayBytes.inc({ direction: 'up' }, seen);
    });
  }

  #failWith(code: ErrorCode, message: string, headers?: Record<string, string>): void {
    if (this.#over) return;
    this.#over = true;
    clearTimeout(this.#timer);
    if (this.#streaming) {
      // Mid-body: the only honest signal left is to cut the response short.
      this.res.destroy(new Error(message));
      return;
    }
    this.ctx.fail(this.res, code, this.started, message, headers);
  }

  // ---- the device's answer ----

  onResponse(head: ResponseHead, end: boolean): void {
    clearTimeout(this.#timer);
    const { res, ctx, plan } = this;
    if (this.#over || res.headersSent || res.destroyed) {
      this.#channel?.cancel();
      return;
    }
    const { deps } = ctx;
    const held = this.deviceToken;
    if (head.status === 401 && held !== undefined) {
      // The device refused the token the hub added (expired, or the device forgot it): the client
      // must authenticate with the device again; the device's own answer is not for the client.
      deps.deviceAuth!.rejected(held.userId, this.deviceId, held.token);
      this.#channel?.cancel();
      this.#failWith('CR_ERR_DEVICE_AUTH_EXPIRED', `the device refused its token; authenticate again with POST ${this.ctx.authPath(this.deviceId)}`, { 'www-authenticate': 'CloudREST-Device' });
      return;
    }
    deps.metrics.relayDuration.observe(Number(process.hrtime.bigint() - this.started) / 1e9);
    const flat = responseHeadersForClient(head.headers);
    const sink = plan ? deps.cache!.onResponse(plan, this.deviceId, this.method, this.target, head, res, flat) : undefined;
    if (sink instanceof Promise) {
      // Hold the body (at most the stream's window: no credit goes back meanwhile) until the cache decides.
      this.#early = [];
      this.#earlyEnd = end;
      this.#channel?.pause();
      sink.then((s) => this.#respond(head, flat, s), (err: unknown) => {
        deps.log.error({ err }, 'relay cache failed');
        this.#respond(head, flat, undefined);
      });
    } else {
      this.#respond(head, flat, sink);
      if (end) this.#end();
    }
  }

  #respond(head: ResponseHead, flat: string[], sink: CacheSink | 'served' | undefined): void {
    const { res, ctx } = this;
    const early = this.#early;
    this.#early = undefined;
    if (sink === 'served') {
      // The device confirmed our cached copy with 304: the cache answered.
      this.#over = true;
      ctx.deps.metrics.relayRequests.inc({ status: String(res.statusCode), cache: 'revalidated' });
      return;
    }
    if (this.#over || res.destroyed) return;
    try {
      res.writeHead(head.status, flat);
    } catch (err) {
      // A head Node will not send (a status outside 100-999's usable range, a control character in a
      // field): the agent is not ours to trust, and its mistake must not escape into the tunnel.
      this.#channel?.cancel();
      this.#failWith('CR_ERR_DEVICE_API_UNREACHABLE', `the device's response head is not valid HTTP: ${(err as Error).message}`);
      return;
    }
    this.#streaming = true;
    this.#sink = sink;
    ctx.deps.metrics.relayRequests.inc({ status: String(head.status), cache: sink ? 'miss' : 'none' });
    if (early) {
      for (const chunk of early) this.#write(chunk);
      if (this.#earlyEnd) this.#end();
      else this.#channel?.resume();
    }
  }

  onData(chunk: Buffer, end: boolean): void {
    const early = this.#early;
    if (early) {
      if (chunk.length > 0) early.push(chunk);
      if (end) this.#earlyEnd = true;
      return;
    }
    if (!this.#streaming) return;
    if (end) this.#end(chunk);
    else if (chunk.length > 0) this.#write(chunk);
  }

  #write(chunk: Buffer): void {
    this.#down += chunk.length;
    this.#sink?.chunk(chunk);
    if (!this.res.write(chunk)) {
      // The client reads slower than the device sends: the channel stops returning credit.
      this.#channel?.pause();
      this.res.once('drain', this.#onDrain);
    }
  }

  /** The answer is complete; `last` is its final chunk (a fixed-length body often arrives whole with its end). */
  #end(last?: Buffer): void {
    if (!this.#streaming || this.#over) return;
    this.#over = true;
    if (last !== undefined && last.length > 0) {
      this.#down += last.length;
      this.#sink?.chunk(last);
    }
    this.ctx.deps.metrics.relayBytes.inc({ direction: 'down' }, this.#down);
    this.#sink?.end();
    this.res.end(last);
  }

  onError(err: Error): void {
    clearTimeout(this.#timer);
    if (this.#clientGone) return;
    this.ctx.deps.log.debug({ deviceId: this.deviceId, err: err.message }, 'relayed request failed');
    // A RouteError is the edge's routing answer to a request a front sent ahead (cluster/node-link.ts).
    if (err instanceof RouteError) this.#failWith(err.code, err.message, err.code === 'CR_ERR_TOO_MANY_REQUESTS' ? { 'retry-after': '1' } : undefined);
    else this.#failWith('CR_ERR_DEVICE_DISCONNECTED', err.message);
  }
}
