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
import { TunnelStream } from './protocol/stream.js';
import type { CacheSink, RelayCache } from './relay-cache.js';

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

/**
 * The relay: `ANY /v1/devices/{id}/api/{path}` goes to the device's REST service through its tunnel,
 * bodies streamed both ways under the tunnel's flow control.
 */
export function createRelay(opts: RelayOptions, deps: RelayDeps) {
  const { tunnels, auth, metrics, log } = deps;

  function fail(res: ServerResponse, code: ErrorCode, started: bigint, message?: string, headers?: Record<string, string>): void {
    sendError(res, code, message, headers);
    metrics.relayRequests.inc({ status: String(res.statusCode), cache: 'none' });
    metrics.relayDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }

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

    const opened = tunnel.open({ method, target, headers }, !withBody);
    if (opened === null) return fail(res, 'CR_ERR_TOO_MANY_REQUESTS', started, undefined, { 'retry-after': '1' });
    let stream: TunnelStream;
    if (opened instanceof TunnelStream) {
      stream = opened;
    } else {
      // Queued behind the device's in-flight limit: leave the queue if the client goes away.
      const cancel = () => opened.cancel();
      res.once('close', cancel);
      try {
        stream = await opened.promise;
      } catch {
        if (res.destroyed) return;
        return fail(res, tunnels.isOnline(deviceId) ? 'CR_ERR_DEVICE_DISCONNECTED' : 'CR_ERR_DEVICE_OFFLINE', started);
      } finally {
        res.off('close', cancel);
      }
      if (res.destroyed) {
        stream.destroy();
        return;
      }
    }
    let clientGone = false;
    res.once('close', () => {
      if (!res.writableFinished) {
        clientGone = true;
        stream.destroy();
      }
    });

    const timer = setTimeout(() => {
      stream.destroy();
      fail(res, 'CR_ERR_DEVICE_TIMEOUT', started, `no answer within ${opts.requestTimeoutMs} ms`);
    }, opts.requestTimeoutMs);

    if (withBody) {
      let seen = 0;
      req.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen > opts.maxRequestBodyBytes) {
          req.unpipe(stream);
          clearTimeout(timer);
          stream.destroy();
          fail(res, 'CR_ERR_BODY_TOO_LARGE', started, `limit is ${opts.maxRequestBodyBytes} bytes`, { connection: 'close' });
          req.resume();
        }
      });
      req.pipe(stream);
      req.once('end', () => metrics.relayBytes.inc({ direction: 'up' }, seen));
    }

    stream.once('response', (head: ResponseHead) => {
      clearTimeout(timer);
      if (res.headersSent || res.destroyed) {
        stream.destroy();
        return;
      }
      if (head.status === 401 && deviceToken !== undefined) {
        // The device refused the token the hub added (expired, or the device forgot it): the client
        // must authenticate with the device again; the device's own answer is not for the client.
        deps.deviceAuth!.rejected(userId, deviceId, deviceToken);
        stream.destroy();
        return fail(res, 'CR_ERR_DEVICE_AUTH_EXPIRED', started, `the device refused its token; authenticate again with POST ${PREFIX}${encodeURIComponent(deviceId)}/auth`, { 'www-authenticate': 'CloudREST-Device' });
      }
      metrics.relayDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
      const flat = responseHeadersForClient(head.headers);
      const sink = plan ? cache!.onResponse(plan, deviceId, method, target, head, res, flat) : undefined;
      if (sink instanceof Promise) {
        sink.then((s) => respond(head, flat, s), (err: unknown) => {
          log.error({ err }, 'relay cache failed');
          respond(head, flat, undefined);
        });
      } else {
        respond(head, flat, sink);
      }
    });

    function respond(head: ResponseHead, flat: string[], sink: CacheSink | 'served' | undefined): void {
      if (sink === 'served') {
        // The device confirmed our cached copy with 304: the cache answered.
        stream.resume();
        metrics.relayRequests.inc({ status: String(res.statusCode), cache: 'revalidated' });
        return;
      }
      if (res.destroyed) return;
      res.writeHead(head.status, flat);
      metrics.relayRequests.inc({ status: String(head.status), cache: sink ? 'miss' : 'none' });
      let down = 0;
      stream.on('data', (chunk: Buffer) => {
        down += chunk.length;
        sink?.chunk(chunk);
        if (!res.write(chunk)) {
          stream.pause();
          res.once('drain', () => stream.resume());
        }
      });
      stream.once('end', () => {
        metrics.relayBytes.inc({ direction: 'down' }, down);
        sink?.end();
        res.end();
      });
    }

    stream.once('error', (err: Error) => {
      clearTimeout(timer);
      if (clientGone) return;
      if (!res.headersSent) {
        fail(res, 'CR_ERR_DEVICE_DISCONNECTED', started, err.message);
      } else {
        // Mid-body: the only honest signal left is to cut the response short.
        res.destroy(err);
      }
      log.debug({ deviceId, err: err.message }, 'relayed request failed');
    });
  };
}
