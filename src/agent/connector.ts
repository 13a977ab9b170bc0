import { randomInt } from 'node:crypto';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, rootCertificates, type TLSSocket } from 'node:tls';
import { WebSocket } from 'ws';
import { ConfigError } from '../config/load.js';
import { wsDuplex } from '../relay/protocol/ws-duplex.js';

export type HubTransport = 'tcp' | 'tls' | 'ws' | 'wss';

/** One hub address from --hub, parsed once at start-up. */
export interface HubEndpoint {
  /** As given (for logs and the 'connected' event). */
  url: string;
  transport: HubTransport;
  host: string;
  port: number;
  /** ws:// and wss:// only: the URL to open, path defaulted to /v1/agent. */
  wsUrl?: string;
  /** Credentials for this hub from `ID:SECRET@` in the URL (a second hub that knows the device otherwise). */
  deviceId?: string;
  secret?: string;
}

/** The tunnel port of `cloudrest hub` (docs: default ports). */
const DEFAULT_TUNNEL_PORT = 7443;
const DEFAULT_WS_PATH = '/v1/agent';

export function parseHubUrl(raw: string): HubEndpoint {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`--hub ${JSON.stringify(raw)}: not a URL (expected tcp://, tls://, ws:// or wss://)`);
  }
  const transport = u.protocol.slice(0, -1);
  if (transport !== 'tcp' && transport !== 'tls' && transport !== 'ws' && transport !== 'wss') {
    throw new ConfigError(`--hub ${raw}: unsupported scheme ${u.protocol} (expected tcp://, tls://, ws:// or wss://)`);
  }
  // IPv6 literals come bracketed in URLs; sockets want them bare.
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new ConfigError(`--hub ${raw}: no host`);
  let creds: { deviceId?: string; secret?: string } = {};
  if (u.username || u.password) {
    if (!u.username || !u.password) throw new ConfigError(`--hub ${u.protocol}//${u.host}: credentials in a hub URL are ID:SECRET@`);
    creds = { deviceId: decodeURIComponent(u.username), secret: decodeURIComponent(u.password) };
    u.username = '';
    u.password = '';
  }
  // Logged and reported as given, less any secret.
  const url = creds.deviceId !== undefined ? u.toString().replace(/\/$/, raw.endsWith('/') ? '/' : '') : raw;
  if (transport === 'tcp' || transport === 'tls') {
    if (u.pathname !== '' && u.pathname !== '/') throw new ConfigError(`--hub ${url}: ${transport}:// URLs take no path`);
    return { url, transport, host, port: u.port ? Number(u.port) : DEFAULT_TUNNEL_PORT, ...creds };
  }
  const port = u.port ? Number(u.port) : transport === 'wss' ? 443 : 80;
  if (u.pathname === '' || u.pathname === '/') u.pathname = DEFAULT_WS_PATH;
  return { url, transport, host, port, wsUrl: u.toString(), ...creds };
}

export interface ConnectOptions {
  /** Extra trusted CA (PEM), added to the system's roots for tls:// and wss://. */
  ca?: string | undefined;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/**
 * Opens a byte stream to the hub. Each call resolves the host name afresh (a hub that moved is found
 * on the next attempt). TLS certificates are always verified, against the system roots plus `ca`.
 */
export function connectHub(ep: HubEndpoint, opts: ConnectOptions): Promise<Duplex> {
  const ca = opts.ca ? [...rootCertificates, opts.ca] : undefined;
  const servername = isIP(ep.host) ? undefined : ep.host;
  switch (ep.transport) {
    case 'tcp':
      return connectSocket(netConnect({ host: ep.host, port: ep.port }), 'connect', opts);
    case 'tls':
      return connectSocket(tlsConnect({ host: ep.host, port: ep.port, servername, ca }), 'secureConnect', opts);
    case 'ws':
    case 'wss':
      return connectWebSocket(ep.wsUrl!, { ca, servername }, opts);
  }
}

function connectSocket(socket: Socket | TLSSocket, ready: 'connect' | 'secureConnect', opts: ConnectOptions): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onReady = (): void => {
      cleanup();
      socket.setNoDelay(true);
      // TCP keepalive notices a dead path even when our PINGs are not due yet.
      socket.setKeepAlive(true, 30_000);
      resolve(socket);
    };
    const onAbort = (): void => fail(new Error('connect aborted'));
    const timer = setTimeout(() => fail(new Error(`connect timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off(ready, onReady);
      socket.off('error', fail);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    socket.once(ready, onReady);
    socket.once('error', fail);
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function connectWebSocket(url: string, tls: { ca: string[] | undefined; servername: string | undefined }, opts: ConnectOptions): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      handshakeTimeout: opts.timeoutMs,
      perMessageDeflate: false,
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(tls.servername ? { servername: tls.servername } : {}),
    });
    const fail = (err: Error): void => {
      cleanup();
      ws.terminate();
      reject(err);
    };
    const onOpen = (): void => {
      cleanup();
      resolve(wsDuplex(ws));
    };
    const onClose = (code: number): void => fail(new Error(`websocket closed during the handshake (${code})`));
    const onAbort = (): void => fail(new Error('connect aborted'));
    const cleanup = (): void => {
      ws.off('open', onOpen);
      ws.off('error', fail);
      ws.off('close', onClose);
      opts.signal?.removeEventListener('abort', onAbort);
      // ws may still report an error while terminating; it has nobody to tell.
      ws.on('error', () => {});
    };
    ws.once('open', onOpen);
    ws.once('error', fail);
    ws.once('close', onClose);
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Fisher-Yates: a fresh random order of the hubs for each round of attempts. */
export function shuffle<T>(items: readonly T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/**
 * Exponential backoff with full jitter: the n-th delay is drawn uniformly from
 * [minMs, min(maxMs, minMs * 2^(n+1))], so agents that lost the same hub spread their returns.
 */
export class Backoff {
  #attempt = 0;

  constructor(
    readonly minMs: number,
    readonly maxMs: number,
  ) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.#attempt + 1, 30));
    this.#attempt++;
    return Math.round(this.minMs + Math.random() * (ceiling - this.minMs));
  }

  /** The longest delay, still jittered a little (used after AUTH_FAILED). */
  longest(): number {
    this.#attempt = 30;
    return Math.round(this.maxMs * (0.9 + Math.random() * 0.1));
  }

  reset(): void {
    this.#attempt = 0;
  }

  get attempt(): number {
    return this.#attempt;
  }
}

/** A wait between attempts that stop() can cut short. */
export class Sleep {
  #current: { timer: NodeJS.Timeout; done: () => void } | undefined;

  for(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#current = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#current = { timer, done };
    });
  }

  wake(): void {
    this.#current?.done();
  }
}
