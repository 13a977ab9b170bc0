/**
 * Fixtures for the agent tests: a minimal hub built from TunnelSession role 'hub' on real TCP, TLS or
 * WebSocket servers, and a small device REST service. (Named *.test.ts so the build leaves it out of
 * dist; it holds no tests itself.)
 */
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import { WebSocketServer } from 'ws';
import { agentOptions, resolveAgentConfig, type AgentConfig } from '../config/agent-options.js';
import { loadConfig } from '../config/load.js';
import { ErrorCode, PROTOCOL_VERSION } from '../relay/protocol/frames.js';
import type { HeaderList } from '../relay/protocol/heads.js';
import { TunnelSession, type Hello, type Welcome } from '../relay/protocol/session.js';
import type { TunnelStream } from '../relay/protocol/stream.js';
import { WS_MAX_MESSAGE_BYTES, wsDuplex } from '../relay/protocol/ws-duplex.js';
import { Agent, type AgentTimings } from './agent.js';
import { createLogger } from './log.js';

export interface TestHubOptions {
  transport?: 'tcp' | 'tls' | 'ws' | 'wss';
  /** For tls/wss. */
  tls?: { cert: string; key: string };
  /** Return an ErrorCode to refuse the HELLO (AUTH_FAILED, say); undefined accepts it. */
  check?: (hello: Hello) => number | undefined;
  welcome?: Partial<Welcome>;
}

export interface RelayedResponse {
  status: number;
  headers: HeaderList;
  body: Buffer;
}

/** A hub that speaks the tunnel protocol and records what agents do. */
export class TestHub extends EventEmitter {
  readonly hellos: Hello[] = [];
  readonly notifications: Array<{ seq: number; text: string; bootId: string }> = [];
  readonly sessions: TunnelSession[] = [];
  readonly sockets = new Set<Socket>();
  /** Established sessions, newest last. */
  readonly established: TunnelSession[] = [];
  ackNotifications = true;
  check: TestHubOptions['check'];
  #server!: NetServer | HttpServer;
  #wss: WebSocketServer | undefined;
  url = '';

  private constructor(private readonly opts: TestHubOptions) {
    super();
    this.check = opts.check;
  }

  static async start(opts: TestHubOptions = {}): Promise<TestHub> {
    const hub = new TestHub(opts);
    await hub.#listen();
    return hub;
  }

  async #listen(): Promise<void> {
    const transport = this.opts.transport ?? 'tcp';
    const track = (s: Socket): void => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    };
    if (transport === 'tcp' || transport === 'tls') {
      const server = transport === 'tcp'
        ? createNetServer((s) => this.accept(s))
        : createTlsServer({ cert: this.opts.tls!.cert, key: this.opts.tls!.key }, (s) => this.accept(s));
      server.on('connection', track);
      this.#server = server;
    } else {
      const server = transport === 'ws' ? createHttpServer() : (await import('node:https')).createServer({ cert: this.opts.tls!.cert, key: this.opts.tls!.key });
      server.on('connection', track);
      // The real hub's limit: its maxFrameBytes plus WS_MAX_MESSAGE_BYTES.
      this.#wss = new WebSocketServer({ server, path: '/v1/agent', maxPayload: 65_536 + WS_MAX_MESSAGE_BYTES, perMessageDeflate: false });
      this.#wss.on('connection', (ws) => this.accept(wsDuplex(ws)));
      this.#server = server;
    }
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    const port = (this.#server.address() as AddressInfo).port;
    const host = transport === 'tls' || transport === 'wss' ? 'localhost' : '127.0.0.1';
    this.url = `${transport}://${host}:${port}`;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** The newest established session. */
  get session(): TunnelSession | undefined {
    return this.established.at(-1);
  }

  accept(duplex: Duplex): void {
    duplex.on('error', () => {});
    const session = new TunnelSession(duplex, 'hub', { maxFrameBytes: 65_536, windowBytes: 262_144 });
    this.sessions.push(session);
    let bootId = '';
    session.on('hello', (hello: Hello) => {
      this.hellos.push(hello);
      this.emit('hello', hello);
      const refuse = this.check?.(hello);
      if (refuse !== undefined) {
        session.close(refuse, 'refused by the test hub');
        return;
      }
      bootId = hello.bootId;
      session.sendWelcome({ version: PROTOCOL_VERSION, pingIntervalMs: 1000, idleTimeoutMs: 5000, maxFrameBytes: 65_536, windowBytes: 262_144, ...this.opts.welcome }, hello);
      this.established.push(session);
      this.emit('session', session);
    });
    session.on('notify', (seq: number, text: Buffer) => {
      this.notifications.push({ seq, text: text.toString('utf8'), bootId });
      this.emit('notify', seq, text.toString('utf8'));
      if (this.ackNotifications) session.sendNotifyAck(seq);
    });
    session.once('close', () => this.emit('sessionClosed', session));
  }

  /** Resolves with the next session to complete the handshake. */
  nextSession(timeoutMs = 10_000): Promise<TunnelSession> {
    return withTimeout(once(this, 'session').then(([s]) => s as TunnelSession), timeoutMs, 'no agent session');
  }

  /** Resolves once `n` notifications in total have arrived. */
  async waitForNotifications(n: number, timeoutMs = 10_000): Promise<void> {
    await waitUntil(() => this.notifications.length >= n, timeoutMs, `${n} notifications (have ${this.notifications.length})`);
  }

  /** Relays one request over the newest session, as the real hub would, and reads the whole answer. */
  async request(method: string, target: string, opts: { headers?: HeaderList; body?: string | Buffer } = {}): Promise<RelayedResponse> {
    const s = this.open(method, target, opts);
    const head = await responseOf(s);
    const parts: Buffer[] = [];
    for await (const c of s) parts.push(c as Buffer);
    return { status: head.status, headers: head.headers, body: Buffer.concat(parts) };
  }

  /** Opens a request stream; with `body`, sends it and ends the request. */
  open(method: string, target: string, opts: { headers?: HeaderList; body?: string | Buffer; streaming?: boolean } = {}): TunnelStream {
    const session = this.session;
    if (!session) throw new Error('no agent connected');
    const noBody = opts.body === undefined && !opts.streaming;
    const s = session.request({ method, target, headers: opts.headers ?? [] }, noBody);
    if (opts.body !== undefined) s.end(opts.body);
    return s;
  }

  /** Drops every connection at once, without GOAWAY (a crash or a network cut). */
  dropAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  /** Stops answering: reads nothing more, so PINGs go unanswered. */
  goSilent(): void {
    for (const s of this.sockets) s.pause();
  }

  async close(): Promise<void> {
    for (const s of this.sessions) if (!s.closed) s.close(ErrorCode.SHUTTING_DOWN, 'test over');
    this.dropAll();
    this.#wss?.close();
    await new Promise((r) => this.#server.close(r));
  }
}

export function responseOf(s: TunnelStream): Promise<{ status: number; headers: HeaderList }> {
  if (s.response) return Promise.resolve(s.response);
  return new Promise((resolve, reject) => {
    s.once('response', resolve);
    s.once('error', reject);
  });
}

export function header(headers: HeaderList, name: string): string | undefined {
  return headers.find(([k]) => k === name)?.[1];
}

/** The device's REST service: a real HTTP server with handlers set per test. */
export class DeviceApi {
  readonly seen: Array<{ method: string; url: string; headers: IncomingMessage['headers']; rawHeaders: string[]; body: string }> = [];
  readonly routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
  readonly server: HttpServer;
  info: unknown = { model: 'test-device', firmware: '1.0' };
  /** Delay before GET /device answers. */
  infoDelayMs = 0;

  private constructor() {
    this.server = createHttpServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      if (path === '/device') {
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(this.info));
        }, this.infoDelayMs);
        return;
      }
      const route = this.routes.get(`${req.method} ${path}`);
      if (route) {
        route(req, res);
        return;
      }
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const body = Buffer.concat(parts).toString('utf8');
        this.seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ method: req.method, url: req.url, body }));
      });
    });
  }

  static async start(): Promise<DeviceApi> {
    const d = new DeviceApi();
    d.server.listen(0, '127.0.0.1');
    await once(d.server, 'listening');
    return d;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/** A config as `cloudrest agent` would build it from these flags. */
export function agentConfig(args: string[]): AgentConfig {
  return resolveAgentConfig(loadConfig(agentOptions, { argv: args, env: {} }).config);
}

export const FAST: Partial<AgentTimings> = { connectTimeoutMs: 2000, handshakeTimeoutMs: 2000, infoTimeoutMs: 1000, stableAfterMs: 300, stopGraceMs: 1500 };

/** An agent with a captured JSON log (`logs`), stopped by `stopAll()`. */
export function makeAgent(args: string[], timings: Partial<AgentTimings> = {}): Agent & { logs: Array<Record<string, unknown>> } {
  const logs: Array<Record<string, unknown>> = [];
  const log = createLogger({
    level: 'debug',
    write: (line) => {
      logs.push(JSON.parse(line) as Record<string, unknown>);
      if (process.env.CLOUDREST_TEST_VERBOSE) process.stderr.write(`[agent] ${line}`);
    },
  });
  const agent = new Agent(agentConfig(['--backoff-min-ms', '50', '--backoff-max-ms', '400', ...args]), { log, timings: { ...FAST, ...timings } });
  running.add(agent);
  return Object.assign(agent, { logs });
}

const running = new Set<Agent>();

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((a) => a.stop()));
  running.clear();
}

export function tempDir(): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), 'cloudrest-agent-'));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export async function waitUntil(cond: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    }),
  ]);
}
