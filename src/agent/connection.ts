import type { Duplex } from 'node:stream';
import { ERROR_CODE_NAMES, ErrorCode } from '../relay/protocol/frames.js';
import { TunnelSession, type Hello, type Welcome } from '../relay/protocol/session.js';
import type { TunnelChannel } from '../relay/protocol/channel.js';
import type { HubEndpoint } from './connector.js';
import { describeError, type Logger } from './log.js';
import type { NotificationQueue, QueuedNotification } from './notify-queue.js';

/** Used when the hub's WELCOME leaves a value out or sends nonsense. */
const DEFAULT_PING_INTERVAL_MS = 20_000;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

export interface ConnectionOptions {
  maxFrameBytes: number;
  windowBytes: number;
  handshakeTimeoutMs: number;
}

export interface ConnectionHooks {
  log: Logger;
  queue: NotificationQueue;
  /** A relayed request arrived. */
  onChannel(channel: TunnelChannel): void;
  onEstablished(conn: HubConnection, welcome: Welcome): void;
  onAck(seq: number): void;
}

/** How a connection ended: the loop picks the next delay from it. */
export interface ConnectionOutcome {
  /** WELCOME arrived. */
  established: boolean;
  /** Time from WELCOME to close (0 if never established). */
  heldMs: number;
  /** The hub's GOAWAY code, when it sent one. */
  goawayCode?: number;
  reason: string;
}

/**
 * One tunnel connection from the agent's side: HELLO, then WELCOME within the handshake timeout, then
 * relayed requests, notifications, PINGs every welcome.pingIntervalMs and dead-peer detection (nothing
 * heard for welcome.idleTimeoutMs). `done` resolves when the connection is gone, however it ended.
 */
export class HubConnection {
  readonly session: TunnelSession;
  readonly done: Promise<ConnectionOutcome>;
  #establishedAt = 0;
  #goaway: { code: number; reason: string } | undefined;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #intervals: NodeJS.Timeout[] = [];
  /** Round-trip time of the last PING, for logs. */
  rttMs: number | undefined;

  constructor(
    readonly endpoint: HubEndpoint,
    duplex: Duplex,
    /** The bootId this connection announced; notifications are numbered per bootId. */
    readonly bootId: string,
    hello: Omit<Hello, 'bootId'>,
    opts: ConnectionOptions,
    private readonly hooks: ConnectionHooks,
  ) {
    const log = hooks.log;
    const session = new TunnelSession(duplex, 'agent', { maxFrameBytes: opts.maxFrameBytes, windowBytes: opts.windowBytes });
    this.session = session;
    this.#handshakeTimer = setTimeout(() => session.destroy(new Error(`no WELCOME within ${opts.handshakeTimeoutMs} ms`)), opts.handshakeTimeoutMs);

    session.on('welcome', (w: Welcome) => this.#onWelcome(w));
    session.onChannel = (ch) => hooks.onChannel(ch);
    session.on('notifyAck', (seq: number) => hooks.onAck(seq));
    session.on('pong', (p: Buffer) => {
      this.rttMs = Date.now() - Number(p.readBigUInt64BE(0));
    });
    session.on('goaway', (g: { code: number; reason: string }) => {
      this.#goaway = g;
      this.#logGoaway(g);
    });
    session.on('protocolError', (err: Error) => log.error('tunnel protocol error', { hub: endpoint.url, err: err.message }));
    session.on('internalError', (err: unknown) => log.error('tunnel internal error', { hub: endpoint.url, err: describeError(err) }));

    this.done = new Promise((resolve) => {
      session.once('close', (err: Error | undefined) => {
        clearTimeout(this.#handshakeTimer);
        for (const t of this.#intervals) clearInterval(t);
        this.#intervals = [];
        const g = this.#goaway;
        const reason = g ? `GOAWAY ${ERROR_CODE_NAMES[g.code] ?? g.code}${g.reason ? `: ${g.reason}` : ''}` : err ? describeError(err) : 'connection closed';
        resolve({
          established: this.#establishedAt > 0,
          heldMs: this.#establishedAt > 0 ? Date.now() - this.#establishedAt : 0,
          ...(g ? { goawayCode: g.code } : {}),
          reason,
        });
      });
    });
    session.sendHello({ ...hello, bootId });
  }

  get established(): boolean {
    return this.#establishedAt > 0 && !this.session.closed;
  }

  /** Sends one notification if this connection can carry it (established, same bootId). */
  sendNotification(n: QueuedNotification, currentBootId: string): void {
    if (!this.established || this.bootId !== currentBootId) return;
    // NOTIFY is seq (4 bytes) + text; a frame over the hub's limit would close the tunnel, and the
    // line would be resent after every reconnect. Such a line can never go: drop it.
    if (4 + n.text.length > this.session.peerMaxFrameBytes) {
      this.hooks.log.error('notification dropped: larger than the hub accepts', { seq: n.seq, bytes: n.text.length, hubMaxFrameBytes: this.session.peerMaxFrameBytes });
      this.hooks.queue.remove(n.seq);
      return;
    }
    this.session.sendNotify(n.seq, n.text);
  }

  #onWelcome(w: Welcome): void {
    const session = this.session;
    clearTimeout(this.#handshakeTimer);
    this.#establishedAt = Date.now();
    const pingIntervalMs = positive(w.pingIntervalMs, DEFAULT_PING_INTERVAL_MS, 100);
    const idleTimeoutMs = positive(w.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS, 200);
    this.#intervals.push(setInterval(() => {
      const p = Buffer.allocUnsafe(8);
      p.writeBigUInt64BE(BigInt(Date.now()));
      session.sendPing(p);
    }, pingIntervalMs));
    this.#intervals.push(setInterval(() => {
      const silentMs = Date.now() - session.lastReceivedAt;
      if (silentMs > idleTimeoutMs) {
        this.hooks.log.warn('hub silent; dropping the connection', { hub: this.endpoint.url, silentMs, idleTimeoutMs });
        session.destroy(new Error(`nothing heard from the hub for ${silentMs} ms`));
      }
    }, Math.max(50, Math.min(1000, idleTimeoutMs / 4))));
    this.hooks.onEstablished(this, w);
    // Everything not yet acknowledged goes (again): the hub drops what it has seen by bootId + seq.
    for (const n of this.hooks.queue.pending()) this.sendNotification(n, this.bootId);
  }

  #logGoaway(g: { code: number; reason: string }): void {
    const log = this.hooks.log;
    const fields = { hub: this.endpoint.url, code: ERROR_CODE_NAMES[g.code] ?? g.code, reason: g.reason };
    switch (g.code) {
      case ErrorCode.AUTH_FAILED:
        log.error('hub refused the device credentials; retrying at the longest backoff', fields);
        return;
      case ErrorCode.REVOKED:
        log.error('hub says this device is revoked; retrying at the longest backoff', fields);
        return;
      case ErrorCode.TAKEN_OVER:
        log.warn('another connection with this device id took over; is a second agent running with these credentials?', fields);
        return;
      case ErrorCode.NO_ERROR:
      case ErrorCode.SHUTTING_DOWN:
        log.info('hub is closing the connection; finishing requests in flight', { ...fields, inflight: this.session.activeStreams });
        return;
      default:
        log.error('hub closed the connection with an error', fields);
    }
  }
}

function positive(v: unknown, fallback: number, min: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.max(min, v) : fallback;
}
