import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { AgentConfig } from '../config/agent-options.js';
import { ConfigError, httpUrlOption } from '../config/load.js';
import { parseHubUrl } from './connector.js';
import { Forwarder } from './forwarder.js';
import { HubLink, type AgentTimings } from './hub-link.js';
import { LanAccess } from './lan/lan-access.js';
import { createLogger, describeError, type LogLevel, type Logger } from './log.js';
import { NotifyInputs } from './notifications.js';
import { NotificationQueue, type QueuedNotification } from './notify-queue.js';

export type { AgentTimings } from './hub-link.js';

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
 * between rounds, forever), and one more to each --also-hub; relays the hubs' requests to the device's
 * REST service and forwards the device's notifications. With --lan-port it also serves the REST API on
 * the LAN to the hubs' token holders, and with --discovery it answers LAN discovery (lan/lan-access.ts).
 * Events (of the --hub connection): 'connected' (hub URL), 'disconnected' (reason), 'notification-acked' (seq).
 */
export class Agent extends EventEmitter {
  readonly #config: AgentConfig;
  readonly #log: Logger;
  readonly #timings: AgentTimings;
  readonly #forwarder: Forwarder;
  readonly #queue: NotificationQueue;
  readonly #inputs: NotifyInputs;
  readonly #links: HubLink[];
  readonly #lan: LanAccess | undefined;
  #ca: string | undefined;
  #info: Record<string, unknown> = {};
  #infoError: string | undefined;
  #started = false;
  #stopping = false;
  #stopped: Promise<void> | undefined;

  constructor(config: AgentConfig, options: AgentOptions = {}) {
    super();
    this.#config = config;
    this.#log = options.log ?? createLogger({ level: config.logLevel as LogLevel | 'silent' });
    this.#timings = { ...DEFAULT_TIMINGS, ...options.timings };
    if (config.hub.length === 0) throw new ConfigError('--hub: at least one hub URL is needed');
    const groups = [config.hub.map(parseHubUrl), ...config.alsoHub.map((u) => [parseHubUrl(u)])];
    // Two connections to one hub with one identity would take the device over from each other forever.
    const groupOf = new Map<string, number>();
    groups.forEach((group, i) => {
      for (const ep of group) {
        const key = `${ep.transport}://${ep.host}:${ep.port}/${ep.deviceId ?? config.deviceId}`;
        if ((groupOf.get(key) ?? i) !== i) throw new ConfigError(`--also-hub ${ep.url}: this hub is already in --hub or --also-hub (with the same device id)`);
        groupOf.set(key, i);
      }
    });
    if (config.backoffMaxMs < config.backoffMinMs) throw new ConfigError('--backoff-max-ms must not be less than --backoff-min-ms');
    const api = httpUrlOption('--api', config.api);
    if (!config.infoPath.startsWith('/')) throw new ConfigError('--info-path must start with /');
    this.#forwarder = new Forwarder({ api: config.api, concurrency: config.concurrency, requestTimeoutMs: config.requestTimeoutMs, log: this.#log });
    this.#lan = LanAccess.fromConfig(config, api, {
      log: this.#log,
      client: this.#forwarder.client,
      info: () => this.#info,
      refreshInfo: () => this.#refreshInfo(),
      onWrite: (target) => {
        for (const link of this.#links) link.invalidate(target);
      },
    });
    this.#queue = new NotificationQueue(config.notifyQueue);
    this.#links = groups.map((endpoints, i) => {
      // The inputs feed the first connection's queue (and wait for it when full); the others get copies.
      const queue = i === 0 ? this.#queue : new NotificationQueue(config.notifyQueue);
      if (i > 0) {
        this.#queue.on('added', (n: QueuedNotification) => {
          if (!queue.push(n.text)) this.#log.warn('notification not queued for a hub: its queue is full', { hubs: endpoints.map((e) => e.url) });
        });
      }
      return new HubLink(endpoints, {
        deviceId: config.deviceId, secret: config.secret, maxFrameBytes: config.maxFrameBytes, windowBytes: config.windowBytes,
        concurrency: config.concurrency, backoffMinMs: config.backoffMinMs, backoffMaxMs: config.backoffMaxMs,
        ca: () => this.#ca, lan: this.#lan !== undefined,
      }, {
        log: this.#log, timings: this.#timings, forwarder: this.#forwarder, queue,
        refreshInfo: async () => {
          await this.#refreshInfo();
          return this.#info;
        },
        ...(this.#lan ? { onLanKeys: (k) => this.#lan?.trust?.addKeys(k), onRevoked: (r) => this.#lan?.trust?.addRevoked(r) } : {}),
      });
    });
    const primary = this.#links[0]!;
    for (const ev of ['connected', 'disconnected', 'notification-acked']) primary.on(ev, (v: unknown) => this.emit(ev, v));
    this.#inputs = new NotifyInputs(
      { pipe: config.notifyPipe, socket: config.notifySocket, port: config.notifyPort, maxNotificationBytes: config.maxNotificationBytes },
      this.#queue,
      this.#log,
    );
  }

  /** Random per agent process: the hub drops resent notifications by bootId + seq. */
  get bootId(): string {
    return this.#links[0]!.bootId;
  }

  /** The hub URL of the established --hub tunnel, if any. */
  get connectedTo(): string | undefined {
    return this.#links[0]!.connectedTo;
  }

  /** Hub URLs with an established tunnel, over all connections (--hub and each --also-hub). */
  get connectedHubs(): string[] {
    return this.#links.map((l) => l.connectedTo).filter((u): u is string => u !== undefined);
  }

  /** The port POST /notify listens on (useful with --notify-port 0). */
  get notifyPort(): number | undefined {
    return this.#inputs.port;
  }

  /** The LAN port (useful with --lan-port 0); undefined without LAN access. */
  get lanPort(): number | undefined {
    return this.#lan?.port;
  }

  /** The UDP port discovery listens on; undefined without --discovery. */
  get discoveryPort(): number | undefined {
    return this.#lan?.discoveryPort;
  }

  /** Notifications waiting for the hub's acknowledgement. */
  get queuedNotifications(): number {
    return this.#queue.size;
  }

  /** Opens the notification inputs and the LAN side, then connects in the background (forever, until stop()). */
  async start(): Promise<void> {
    if (this.#started || this.#stopping) throw new Error('agent already started');
    this.#started = true;
    if (this.#config.tlsCa) {
      try {
        this.#ca = await readFile(this.#config.tlsCa, 'utf8');
      } catch (err) {
        throw new ConfigError(`--tls-ca ${this.#config.tlsCa}: ${describeError(err)}`);
      }
    }
    await this.#inputs.start();
    try {
      await this.#lan?.start();
    } catch (err) {
      await this.#inputs.close();
      throw err;
    }
    if (this.#stopping) {
      // stop() came while the inputs were opening.
      await this.#inputs.close();
      await this.#lan?.close();
      return;
    }
    this.#log.info('agent starting', {
      deviceId: this.#config.deviceId, hubs: this.#links[0]!.endpoints.map((e) => e.url), alsoHubs: this.#links.slice(1).map((l) => l.endpoints[0]!.url),
      api: this.#config.api, bootId: this.bootId, ...this.#lan?.describe(),
    });
    for (const link of this.#links) link.start();
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
    await this.#inputs.close();
    await this.#lan?.close();
    await Promise.all(this.#links.map((l) => l.stop(deadline)));
    if (!(await this.#forwarder.drain(deadline))) this.#log.warn('stopping with relayed requests still running', { inflight: this.#forwarder.inflight });
    this.#forwarder.close();
    await Promise.all(this.#links.map((l) => l.close()));
    if (this.#queue.size > 0) this.#log.warn('notifications not delivered', { count: this.#queue.size });
    this.#log.info('agent stopped');
  }

  /** GET {api}{infoPath} for HELLO and the LAN; on failure the last info obtained (or {}) is kept. */
  async #refreshInfo(): Promise<void> {
    try {
      this.#info = await this.#forwarder.fetchInfo(this.#config.infoPath, this.#timings.infoTimeoutMs);
      this.#infoError = undefined;
      this.#lan?.onInfo(this.#info);
    } catch (err) {
      const why = describeError(err);
      // Warn when the failure is new; the same failure on every reconnect is not news.
      const level = why === this.#infoError ? 'debug' : 'warn';
      this.#infoError = why;
      this.#log[level]('device info unavailable; using the last known', { api: this.#config.api, path: this.#config.infoPath, err: why });
    }
  }
}
