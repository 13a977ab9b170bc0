import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCode } from '../errors.js';
import { bearerToken } from '../core/auth/authenticator.js';
import { lingerOverRefusedBody, sendError } from '../http/reply.js';
import { requestHeadersForDevice } from './headers.js';
import type { RelayContext, RelayDeps, RelayOptions } from './relay-context.js';
import { RelayedRequest } from './relayed-request.js';
import { RouteError, isWaiting, type Opened, type RequestStream } from './router.js';

export type { RelayDeps, RelayOptions } from './relay-context.js';

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
  const { router, auth, metrics } = deps;

  function fail(res: ServerResponse, code: ErrorCode, started: bigint, message?: string, headers?: Record<string, string>): void {
    sendError(res, code, message, headers);
    metrics.relayRequests.inc({ status: String(res.statusCode), cache: 'none' });
    metrics.relayDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }
  const ctx: RelayContext = { opts, deps, fail, authPath: (deviceId) => `${PREFIX}${encodeURIComponent(deviceId)}/auth` };

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
      fail(res, 'CR_ERR_BODY_TOO_LARGE', started, `limit is ${opts.maxRequestBodyBytes} bytes`);
      return lingerOverRefusedBody(req);
    }

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
    const headers = plan?.forwardHeaders ?? clientHeaders;

    const exchange = new RelayedRequest(ctx, req, res, started, deviceId, method, target, plan, deviceToken === undefined ? undefined : { userId, token: deviceToken });
    let opened: Opened | Promise<Opened> = router.open(deviceId, { method, target, headers }, !withBody, exchange);
    if (opened instanceof Promise) opened = await opened;
    if (opened === 'offline') return fail(res, 'CR_ERR_DEVICE_OFFLINE', started);
    if (opened === 'busy') return fail(res, 'CR_ERR_TOO_MANY_REQUESTS', started, undefined, { 'retry-after': '1' });
    let channel: RequestStream;
    if (!isWaiting(opened)) {
      channel = opened;
    } else {
      // Queued behind the device's in-flight limit: leave the queue if the client goes away.
      const cancel = opened.cancel;
      res.once('close', cancel);
      try {
        channel = await opened.started;
      } catch (err) {
        if (res.destroyed) return;
        return fail(res, err instanceof RouteError ? err.code : 'CR_ERR_DEVICE_DISCONNECTED', started);
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
