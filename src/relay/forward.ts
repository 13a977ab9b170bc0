import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { ErrorCode } from '../errors.js';
import type { DeviceAuth } from '../accounts/device-auth.js';
import type { Authenticator } from '../http/auth.js';
import { bearerToken } from '../http/auth.js';
import type { HubMetrics } from '../http/metrics.js';
import { sendError } from '../http/reply.js';
import type { TunnelServer } from './edge/tunnel-server.js';
import { requestHeadersForDevice, responseHeadersForClient } from './headers.js';
import type { ResponseHead } from './protocol/heads.js';
import { TunnelChannel, type ChannelListener } from './protocol/channel.js';
import type { CachePlan, CacheSink, RelayCache } from './relay-cache.js';

export interface RelayOptions {
  maxRequestBodyBytes: number;
  requestTimeoutMs: number;
}

export interface RelayDeps {
  tunnels: TunnelServer;
  auth: Authenticator;
  cache: RelayCache | undefined;
  metrics: HubMetrics;
  log: Logger;
  /** True while the hub drains for shutdown: new requests get 503. */
  isShuttingDown: () => boolean;
  /** Device-side authentication: the device's own token to add to a user's calls, if the hub holds one. */
  deviceAuth?: DeviceAuth;
}

const PREFIX = '/v1/devices/';
const API = '/api';

/** Splits `/v1/devices/{id}/api/{rest}` into id and the device-side target (`/{rest}` with query). */
export function parseRelayUrl(url: string): { deviceId: string; target: string } | undefined {
  if (!url.startsWith(PREFIX)) return undefined;
  const slash = url.indexOf('/', PREFIX.length);
  if (slash < 0) return undefined;
  if (!url.startsWith(API, slash) ) return undefined;
  const after = slash + API.length;
  const c = url.charCodeAt(after);
  // `/api`, `/api/...` or `/api?...`; not `/apix`.
  if (after < url.length && c !== 47 /* / */ && c !== 63 /* ? */) return undefined;
  let deviceId: string;
  try {
    deviceId = decodeURIComponent(url.slice(PREFIX.length, slash));
  } catch {
    return undefined;
  }
  const rest = url.slice(after);
  const target = rest === '' ? '/' : rest.charCodeAt(0) === 63 ? `/${rest}` : rest;
  return { deviceId, target };
}

function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  if (cl !== undefined) return cl !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

/** What every relayed request of one hub shares. */
interface RelayContext {
  opts: RelayOptions;
  deps: RelayDeps;
  fail: (res: ServerResponse, code: ErrorCode, started: bigint, message?: string, headers?: Record<string, string>) => void;
}

/**
 * The relay: `ANY /v1/devices/{id}/api/{path}` goes to the device's REST service through its tunnel,
 * bodies streamed both ways under the tunnel's flow control.
 */
export function createRelay(opts: RelayOptions, deps: RelayDeps) {
  const { tunnels, auth, metrics } = deps;

  function fail(res: ServerResponse, code: ErrorCode, started: bigint, message?: string, headers?: Record<string, string>): void {
    sendError(res, code, message, headers);
    metrics.relayRequests.inc({ status: String(res.statusCode), cache: 'none' });
    metrics.relayDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }
  const ctx: RelayContext = { opts, deps, fail };

  return async function relay(req: IncomingMessage, res: ServerResponse, deviceId: string, target: string): Promise<void> {
    const started = process.hrtime.bigint();
    if (deps.isShuttingDown()) return fail(res, 'CR_ERR_SHUTTING_DOWN', started, undefined, { connection: 'close' });
    const token = bearerToken(req, false);
    let session = token ? auth.session(token) : undefined;
    if (session instanceof Promise) session = await session;
    if (!session) return fail(res, 'CR_ERR_UNAUTHORIZED', started, undefined, { 'www-authenticate': 'Bearer' });
    // An OAuth token reaches a device's API only with devices:control (first-party sessions have no scopes).
    if (session.scopes !== undefined && !session.scopes.has('devices:control')) {
      return fail(res, 'CR_ERR_INSUFFICIENT_SCOPE', started, 'this request needs the devices:control scope', { 'www-authenticate': 'Bearer error="insufficient_scope", scope="devices:control"' });
    }
    let device = auth.ownedDevice(session.user, deviceId);
    if (device instanceof Promise) device = await device;
    if (!device) return fail(res, 'CR_ERR_DEVICE_NOT_FOUND', started);

    const withBody = hasBody(req);
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > opts.maxRequestBodyBytes) {
      // The body is not read; closing the connection keeps the client from sending it for nothing.
      return fail(res, 'CR_ERR_BODY_TOO_LARGE', started, `limit is ${opts.maxRequestBodyBytes} bytes`, { connection: 'close' });
    }

    const tunnel = tunnels.get(deviceId);
    const cache = deps.cache;
    const method = req.method ?? 'GET';
    const secure = (req.socket as { encrypted?: boolean }).encrypted === true;
    const clientHeaders = requestHeadersForDevice(req, `${PREFIX}${encodeURIComponent(deviceId)}${API}`, secure);
    // Before the cache decides: a call carrying credentials is cached only as RFC 9111 §3.5 allows.
    const userId = session.user.id;
    const deviceToken = deps.deviceAuth?.tokenFor(userId, device);
    if (deviceToken !== undefined) clientHeaders.push(['authorization', `Bearer ${deviceToken}`]);
    let plan = cache?.plan(deviceId, method, target, clientHeaders);
    if (plan instanceof Promise) plan = await plan;
    if (plan && cache!.tryServe(plan, method, res)) {
      metrics.relayRequests.inc({ status: String(res.statusCode), cache: 'hit' });
      metrics.relayDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
      return;
    }
    if (!tunnel) return fail(res, 'CR_ERR_DEVICE_OFFLINE', started);
    const headers = plan?.forwardHeaders ?? clientHeaders;

    const exchange = new RelayedRequest(ctx, req, res, started, deviceId, method, target, plan, deviceToken === undefined ? undefined : { userId, token: deviceToken });
    const opened = tunnel.open({ method, target, headers }, !withBody, exchange);
    if (opened === null) return fail(res, 'CR_ERR_TOO_MANY_REQUESTS', started, undefined, { 'retry-after': '1' });
    let channel: TunnelChannel;
    if (opened instanceof TunnelChannel) {
      channel = opened;
    } else {
      // Queued behind the device's in-flight limit: leave the queue if the client goes away.
      const cancel = () => opened.cancel();
      res.once('close', cancel);
      try {
        channel = await opened.promise;
      } catch {
        if (res.destroyed) return;
        return fail(res, tunnels.isOnline(deviceId) ? 'CR_ERR_DEVICE_DISCONNECTED' : 'CR_ERR_DEVICE_OFFLINE', started);
      } finally {
        res.off('close', cancel);
      }
      if (res.destroyed) {
        channel.cancel();
        return;
      }
    }
    exchange.start(channel, withBody);
  };
}

/**
 * One relayed request once its stream is open: the client's body goes up the channel, the device's
 * answer comes down it into the client's response (through the cache when the plan says so).
 */
class RelayedRequest implements ChannelListener {
  #channel: TunnelChannel | undefined;
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

  start(channel: TunnelChannel, withBody: boolean): void {
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

  #sendBody(channel: TunnelChannel): void {
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
        this.#failWith('CR_ERR_BODY_TOO_LARGE', `limit is ${max} bytes`, { connection: 'close' });
        return; // the rest is read and dropped
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
      this.#failWith('CR_ERR_DEVICE_AUTH_EXPIRED', `the device refused its token; authenticate again with POST ${PREFIX}${encodeURIComponent(this.deviceId)}/auth`, { 'www-authenticate': 'CloudREST-Device' });
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
    this.#failWith('CR_ERR_DEVICE_DISCONNECTED', err.message);
  }
}
