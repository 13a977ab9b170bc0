import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { ERRORS, errorBody, type ErrorCode } from '../../errors.js';
import type { HeaderList } from '../../relay/protocol/heads.js';
import type { ServiceClient } from '../service-client.js';
import type { Logger } from '../log.js';
import type { TokenChecker } from './token-check.js';

export interface LanServerOptions {
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string } | undefined;
  deviceId: string;
  /** Connections served at once; more wait in the kernel's backlog. */
  maxConnections: number;
}

export interface LanServerDeps {
  client: ServiceClient;
  checker: TokenChecker;
  log: Logger;
  /** A write (POST/PUT/PATCH/DELETE answered 2xx) changed `target`: hubs must drop their cached copies. */
  onWrite: (target: string) => void;
}

/** RFC 9111 §4.4: the methods whose success invalidates the target URI. */
const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const MAX_BEARER_CHARS = 2048;

/**
 * The device's REST API on the LAN (seed 002 "Not Internet only"): the same API a client reaches
 * through the hub, served by the agent with the hub's own access tokens, checked here with no hub
 * (TokenChecker). Paths are the device's own (`/temperature`); the hub's form
 * `/v1/devices/{id}/api/temperature` is accepted too, so a client can keep one base path.
 */
export class LanServer {
  #server: Server | undefined;
  #port = 0;

  constructor(
    private readonly opts: LanServerOptions,
    private readonly deps: LanServerDeps,
  ) {}

  get port(): number {
    return this.#port;
  }

  get secure(): boolean {
    return this.opts.tls !== undefined;
  }

  async start(): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.#handle(req, res);
    const tls = this.opts.tls;
    const server = tls
      ? createHttpsServer({ cert: await readFile(tls.certFile), key: await readFile(tls.keyFile) }, handler)
      : createHttpServer(handler);
    server.maxConnections = this.opts.maxConnections;
    server.headersTimeout = 30_000;
    server.requestTimeout = 0; // bodies and answers may stream for long; the response head has its own timeout
    server.keepAliveTimeout = 65_000;
    server.on('clientError', (_err: Error, socket: Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 2000).unref();
    await closed;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const { checker, log } = this.deps;
    const target = this.#deviceTarget(req.url ?? '');
    if (target === undefined) return fail(res, 'CR_ERR_BAD_REQUEST', 'the request target must be a path');
    const verdict = checker.check(bearer(req));
    if (!verdict.ok) {
      log.debug('LAN request refused', { method: req.method, target, code: verdict.code, reason: verdict.reason, from: req.socket.remoteAddress });
      req.resume();
      return fail(res, verdict.code, verdict.reason, verdict.code === 'CR_ERR_UNAUTHORIZED' ? { 'www-authenticate': 'Bearer' } : {});
    }
    this.#forward(req, res, target);
  }

  /** The device-side path and query of a request: as sent, or with the hub's /v1/devices/{id}/api prefix removed. */
  #deviceTarget(url: string): string | undefined {
    if (!url.startsWith('/')) return undefined;
    const prefix = `/v1/devices/${encodeURIComponent(this.opts.deviceId)}/api`;
    if (url.startsWith(prefix)) {
      const rest = url.slice(prefix.length);
      if (rest === '') return '/';
      if (rest[0] === '/') return rest;
      if (rest[0] === '?') return `/${rest}`;
    }
    return url;
  }

  #forward(req: IncomingMessage, res: ServerResponse, target: string): void {
    const { client, log } = this.deps;
    const method = req.method ?? 'GET';
    const headers: HeaderList = [];
    const raw = req.rawHeaders;
    let forwardedFor: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      // The hub's access token is for the agent, never for the device (as through the hub).
      if (name === 'authorization' || name.startsWith('x-forwarded-')) {
        if (name === 'x-forwarded-for') forwardedFor = raw[i + 1];
        continue;
      }
      headers.push([name, raw[i + 1]!]);
    }
    const remote = req.socket.remoteAddress ?? '';
    headers.push(['x-forwarded-for', forwardedFor ? `${forwardedFor}, ${remote}` : remote]);
    headers.push(['x-forwarded-proto', this.secure ? 'https' : 'http']);
    if (req.headers.host) headers.push(['x-forwarded-host', req.headers.host]);

    const body = hasBody(req) ? new PassThrough() : null;
    if (body) req.pipe(body);
    else req.resume();
    let answered = false;
    /** Answers with an error; a request body still arriving is read and dropped, and the connection closes after. */
    const abandon = (code: ErrorCode, message: string): void => {
      answered = true;
      if (body) req.unpipe(body);
      const rest: Record<string, string> = req.complete ? {} : { connection: 'close' };
      req.resume();
      fail(res, code, message, rest);
    };
    const call = client.call(method, target, headers, body, {
      onHead: (status, head, c) => {
        if (answered || res.destroyed) {
          c.abort();
          return;
        }
        answered = true;
        if (WRITES.has(method) && status >= 200 && status < 300) this.deps.onWrite(target);
        const flat: string[] = [];
        for (const [k, v] of head) flat.push(k, v);
        res.writeHead(status, flat);
      },
      onBody: (chunk, c) => {
        if (!res.write(chunk)) {
          c.pause();
          res.once('drain', () => c.resume());
        }
      },
      onEnd: () => res.end(),
      onFail: (code, detail, afterHead) => {
        if (afterHead) {
          res.destroy();
          return;
        }
        log.warn('LAN request failed', { method, target, code, err: detail });
        abandon(code, detail);
      },
    });
    res.once('close', () => {
      // The LAN client went away: stop the local request too.
      if (!res.writableFinished) call.abort();
    });
  }
}

function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  if (cl !== undefined) return cl !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

function bearer(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (!h || h.length > MAX_BEARER_CHARS) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

function fail(res: ServerResponse, code: ErrorCode, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(code, message);
  res.writeHead(ERRORS[code].status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...extra });
  res.end(body);
}
