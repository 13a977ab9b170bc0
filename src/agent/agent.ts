import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import type { AgentConfig } from '../config/agent-options.js';
import { ConfigError } from '../config/load.js';
import { ErrorCode, PROTOCOL_VERSION } from '../relay/protocol/frames.js';
import { Backoff, Sleep, connectHub, parseHubUrl, shuffle, type HubEndpoint } from './connector.js';
import { HubConnection, type ConnectionOutcome } from './connection.js';
import { Forwarder } from './forwarder.js';
import { createLogger, describeError, type LogLevel, type Logger } from './log.js';
import { NotifyInputs } from './notifications.js';
import { NotificationQueue, type QueuedNotification } from './notify-queue.js';

/** Timings that are not user options; tests shorten them. */
export interface AgentTimings {
  /** Time a hub has to answer the connection attempt (TCP/TLS/WebSocket handshake). */
  connectTimeoutMs: number;
  /** Time the hub has to answer HELLO with WELCOME. */
  handshakeTimeoutMs: number;
  /** Time the REST service has to answer GET {infoPath}. */
  infoTimeoutMs: number;
  /** A connection held this long resets the backoff. */
  stableAfterMs: number;
  /** stop(): time in-flight requests and unacknowledged notifications get. */
  stopGraceMs: number;
}

const DEFAULT_TIMINGS: AgentTimings = {
  connectTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  infoTimeoutMs: 5_000,
  stableAfterMs: 5_000,
  stopGraceMs: 5_000,
};

export interface AgentOptions {
  /** Default: JSON lines on stdout at config.logLevel. */
  log?: Logger;
  timings?: Partial<AgentTimings>;
}

/**
 * The device-side agent: keeps one tunnel to a hub (trying each --hub in random order, backing off
 * between rounds, forever), relays the hub's requests to the device's REST service, and forwards the
 * device's notifications. Events: 'connected' (hub URL), 'disconnected' (reason), 'notification-acked'
 * (seq).
 */
export class Agent extends EventEmitter {
  readonly #config: AgentConfig;
  readonly #log: Logger;
  readonly #timings: AgentTimings;
  readonly #endpoints: HubEndpoint[];
  readonly #backoff: Backoff;
  readonly #forwarder: Forwarder;
  readonly #queue: NotificationQueue;
  readonly #inputs: NotifyInputs;
  #bootId = newBootId();
  #ca: string | undefined;
  #info: Record<string, unknown> = {};
  #infoError: string | undefined;
  #conn: HubConnection | undefined;
  #loop: Promise<void> | undefined;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #connectAbort: AbortController | undefined;
  readonly #sleep = new Sleep();

  constructor(config: AgentConfig, options: AgentOptions = {}) {
    super();
    this.#config = config;
    this.#log = options.log ?? createLogger({ level: config.logLevel as LogLevel | 'silent' });
    this.#timings = { ...DEFAULT_TIMINGS, ...options.timings };
    if (config.hub.length === 0) throw new ConfigError('--hub: at least one hub URL is needed');
    this.#endpoints = config.hub.map(parseHubUrl);
    if (config.backoffMaxMs < config.backoffMinMs) throw new ConfigError('--backoff-max-ms must not be less than --backoff-min-ms');
    let api: URL;
    try {
      api = new URL(config.api);
    } catch {
      throw new ConfigError(`--api ${JSON.stringify(config.api)}: not a URL`);
    }
    if (api.protocol !== 'http:' && api.protocol !== 'https:') throw new ConfigError(`--api ${config.api}: expected an http:// or https:// URL`);
    if (!config.infoPath.startsWith('/')) throw new ConfigError('--info-path must start with /');
    this.#backoff = new Backoff(config.backoffMinMs, config.backoffMaxMs);
    this.#forwarder = new Forwarder({ api: config.api, concurrency: config.concurrency, requestTimeoutMs: config.requestTimeoutMs, log: this.#log });
    this.#queue = new NotificationQueue(config.notifyQueue);
    this.#queue.on('added', (n: QueuedNotification) => this.#conn?.sendNotification(n, this.#bootId));
    this.#queue.on('exhausted', () => this.#renewBootId());
    this.#inputs = new NotifyInputs(
      { pipe: config.notifyPipe, socket: config.notifySocket, port: config.notifyPort, maxNotificationBytes: config.maxNotificationBytes },
      this.#queue,
      this.#log,
    );
  }

  /** Random per agent process: the hub drops resent notifications by bootId + seq. */
  get bootId(): string {
    return this.#bootId;
  }

  /** The hub URL of the established tunnel, if any. */
  get connectedTo(): string | undefined {
    return this.#conn?.established ? this.#conn.endpoint.url : undefined;
  }

  /** The port POST /notify listens on (useful with --notify-port 0). */
  get notifyPort(): number | undefined {
    return this.#inputs.port;
  }

  /** Notifications waiting for the hub's acknowledgement. */
  get queuedNotifications(): number {
    return this.#queue.size;
  }

  /** Opens the notification inputs, then connects in the background (forever, until stop()). */
  async start(): Promise<void> {
    if (this.#loop || this.#stopping) throw new Error('agent already started');
    if (this.#config.tlsCa) {
      try {
        this.#ca = await readFile(this.#config.tlsCa, 'utf8');
      } catch (err) {
        throw new ConfigError(`--tls-ca ${this.#config.tlsCa}: ${describeError(err)}`);
      }
    }
    await this.#inputs.start();
    if (this.#stopping) {
      // stop() came while the inputs were opening.
      await this.#inputs.close();
      return;
    }
    this.#log.info('agent starting', { deviceId: this.#config.deviceId, hubs: this.#endpoints.map((e) => e.url), api: this.#config.api, bootId: this.#bootId });
    this.#loop = this.#run().catch((err: unknown) => this.#log.fatal('connection loop failed', { err: describeError(err) }));
  }

  /**
   * Stops accepting notifications, gives unacknowledged ones and in-flight requests a few seconds,
   * says GOAWAY, closes everything and removes the FIFO/socket files it created.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    const deadline = Date.now() + this.#timings.stopGraceMs;
    this.#connectAbort?.abort();
    this.#sleep.wake();
    await this.#inputs.close();
    const conn = this.#conn;
    if (conn?.established) {
      await this.#queue.drained(deadline, conn.session);
      conn.session.goaway(ErrorCode.NO_ERROR, 'agent stopping');
      if (!(await this.#forwarder.drain(deadline))) this.#log.warn('stopping with relayed requests still running', { inflight: this.#forwarder.inflight });
    }
    this.#conn?.session.close(ErrorCode.NO_ERROR, 'agent stopping');
    this.#forwarder.close();
    await this.#loop;
    if (this.#queue.size > 0) this.#log.warn('notifications not delivered', { count: this.#queue.size });
    this.#log.info('agent stopped');
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      let delay: number | undefined;
      for (const ep of shuffle(this.#endpoints)) {
        if (this.#stopping) return;
        let outcome: ConnectionOutcome | undefined;
        try {
          outcome = await this.#attempt(ep);
        } catch (err) {
          // Whatever went wrong, the agent keeps trying: it is the device's only way in.
          this.#log.error('connection attempt failed unexpectedly', { hub: ep.url, err: describeError(err) });
        }
        // Unreachable, or the handshake failed: the next hub of this round may do better.
        if (!outcome || (!outcome.established && !refusesDevice(outcome.goawayCode))) continue;
        delay = this.#delayAfter(outcome);
        break;
      }
      delay ??= this.#backoff.next();
      if (this.#stopping) return;
      this.#log.info('reconnecting', { inMs: delay, attempt: this.#backoff.attempt });
      await this.#sleep.for(delay);
    }
  }

  /** One connection: undefined if the transport could not be opened, else how the tunnel ended. */
  async #attempt(ep: HubEndpoint): Promise<ConnectionOutcome | undefined> {
    const abort = new AbortController();
    this.#connectAbort = abort;
    this.#log.debug('connecting', { hub: ep.url });
    let duplex: Duplex;
    let lostEarly: Error | undefined;
    try {
      duplex = await connectHub(ep, { ca: this.#ca, timeoutMs: this.#timings.connectTimeoutMs, signal: abort.signal });
    } catch (err) {
      if (!this.#stopping) this.#log.warn('hub unreachable', { hub: ep.url, err: describeError(err) });
      return undefined;
    } finally {
      this.#connectAbort = undefined;
    }
    // Until the session listens, an error must not go unheard (it would crash the process).
    duplex.on('error', (err: Error) => (lostEarly ??= err));
    // Fresh device info for HELLO, fetched once the hub is reachable (the hub waits for HELLO longer).
    if (!this.#stopping) await this.#refreshInfo();
    if (this.#stopping || duplex.destroyed) {
      if (!this.#stopping) this.#log.warn('hub unreachable', { hub: ep.url, err: lostEarly ? describeError(lostEarly) : 'connection closed before HELLO' });
      duplex.destroy();
      return undefined;
    }
    const c = this.#config;
    const conn = new HubConnection(
      ep,
      duplex,
      this.#bootId,
      { version: PROTOCOL_VERSION, deviceId: c.deviceId, secret: c.secret, info: this.#info, maxFrameBytes: c.maxFrameBytes, windowBytes: c.windowBytes, maxStreams: c.concurrency },
      { maxFrameBytes: c.maxFrameBytes, windowBytes: c.windowBytes, handshakeTimeoutMs: this.#timings.handshakeTimeoutMs },
      {
        log: this.#log,
        queue: this.#queue,
        onStream: (s) => this.#forwarder.handle(s, conn.session.peerMaxFrameBytes),
        onEstablished: (cn) => {
          this.#log.info('connected', { hub: ep.url, transport: ep.transport, bootId: cn.bootId, queuedNotifications: this.#queue.size });
          this.emit('connected', ep.url);
        },
        onAck: (seq) => {
          // An ack from a connection under an older bootId numbers other notifications.
          if (conn.bootId !== this.#bootId) return;
          if (this.#queue.ack(seq) > 0) this.emit('notification-acked', seq);
        },
      },
    );
    this.#conn = conn;
    const outcome = await conn.done;
    this.#conn = undefined;
    if (outcome.established) {
      this.#log.info('disconnected', { hub: ep.url, reason: outcome.reason, heldMs: outcome.heldMs });
      this.emit('disconnected', outcome.reason);
    } else {
      this.#log.warn('tunnel handshake failed', { hub: ep.url, reason: outcome.reason });
    }
    return outcome;
  }

  /** The wait before the next round, from how the last connection ended. */
  #delayAfter(outcome: ConnectionOutcome): number {
    if (refusesDevice(outcome.goawayCode)) return this.#backoff.longest();
    // A connection that held resets the backoff, unless another agent keeps taking the device over.
    if (outcome.established && outcome.heldMs >= this.#timings.stableAfterMs && outcome.goawayCode !== ErrorCode.TAKEN_OVER) this.#backoff.reset();
    return this.#backoff.next();
  }

  /** GET {api}{infoPath} for HELLO; on failure the last info obtained (or {}) is used. */
  async #refreshInfo(): Promise<void> {
    try {
      this.#info = await this.#forwarder.fetchInfo(this.#config.infoPath, this.#timings.infoTimeoutMs);
      this.#infoError = undefined;
    } catch (err) {
      const why = describeError(err);
      // Warn when the failure is new; the same failure on every reconnect is not news.
      const level = why === this.#infoError ? 'debug' : 'warn';
      this.#infoError = why;
      this.#log[level]('device info unavailable; using the last known', { api: this.#config.api, path: this.#config.infoPath, err: why });
    }
  }

  /** The u32 sequence space is used up: renumber under a new bootId and reconnect with it. */
  #renewBootId(): void {
    this.#bootId = newBootId();
    this.#queue.rebase();
    this.#log.info('notification sequence wrapped; reconnecting with a new bootId', { bootId: this.#bootId });
    this.#conn?.session.goaway(ErrorCode.NO_ERROR, 'new bootId');
  }
}

/** The hub refused this device's credentials, or revoked it: retrying soon will not help. */
function refusesDevice(code: number | undefined): boolean {
  return code === ErrorCode.AUTH_FAILED || code === ErrorCode.REVOKED;
}

function newBootId(): string {
  return randomBytes(12).toString('base64url');
}
