import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { ErrorCode, PROTOCOL_VERSION } from '../relay/protocol/frames.js';
import { hasFeature, type Welcome } from '../relay/protocol/handshake.js';
import { LAN_FEATURE, invalidateEntryBytes, type RevokedEntry } from '../relay/protocol/lan-frames.js';
import type { PublicTokenKey } from '../relay/protocol/signed-token.js';
import { Backoff, Sleep, connectHub, shuffle, type HubEndpoint } from './connector.js';
import { HubConnection, type ConnectionOutcome } from './connection.js';
import type { Forwarder } from './forwarder.js';
import { InvalidationQueue } from './lan/invalidation-queue.js';
import { describeError, type Logger } from './log.js';
import type { NotificationQueue} from './notify-queue.js';
import { type QueuedNotification } from './notify-queue.js';

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

export interface HubLinkSettings {
  deviceId: string;
  secret: string;
  maxFrameBytes: number;
  windowBytes: number;
  concurrency: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** Extra CA (PEM) for tls:// and wss://. */
  ca: () => string | undefined;
  /** Announce the "lan" feature in HELLO (this agent serves the LAN and wants keys and revocations). */
  lan: boolean;
}

export interface HubLinkDeps {
  log: Logger;
  timings: AgentTimings;
  forwarder: Forwarder;
  queue: NotificationQueue;
  /** Fresh device info for HELLO (fetched once the hub is reachable). */
  refreshInfo: () => Promise<Record<string, unknown>>;
  onLanKeys?: (keys: PublicTokenKey[]) => void;
  onRevoked?: (entries: RevokedEntry[]) => void;
}

/**
 * One connection to a hub, kept forever: tries each of its URLs in random order, backs off between
 * rounds, relays the hub's requests to the forwarder and sends the notifications of its queue. An
 * agent has one link per independent hub (`--hub`, then each `--also-hub`). Events: 'connected' (hub
 * URL), 'disconnected' (reason), 'notification-acked' (seq).
 */
export class HubLink extends EventEmitter {
  readonly #backoff: Backoff;
  readonly #sleep = new Sleep();
  readonly #invalidations = new InvalidationQueue();
  #bootId = newBootId();
  #conn: HubConnection | undefined;
  #hubSpeaksLan = false;
  #loop: Promise<void> | undefined;
  #stopping = false;
  #connectAbort: AbortController | undefined;

  constructor(
    readonly endpoints: readonly HubEndpoint[],
    private readonly settings: HubLinkSettings,
    private readonly deps: HubLinkDeps,
  ) {
    super();
    this.#backoff = new Backoff(settings.backoffMinMs, settings.backoffMaxMs);
    deps.queue.on('added', (n: QueuedNotification) => this.#conn?.sendNotification(n, this.#bootId));
    deps.queue.on('exhausted', () => this.#renewBootId());
  }

  get bootId(): string {
    return this.#bootId;
  }

  get connectedTo(): string | undefined {
    return this.#conn?.established ? this.#conn.endpoint.url : undefined;
  }

  get queue(): NotificationQueue {
    return this.deps.queue;
  }

  start(): void {
    this.#loop = this.#run().catch((err: unknown) => this.deps.log.fatal('connection loop failed', { err: describeError(err) }));
  }

  /** A LAN write changed `target`: tell the hub, now or once connected (its cached answers are stale). */
  invalidate(target: string): void {
    const session = this.#conn?.established && this.#hubSpeaksLan ? this.#conn.session : undefined;
    if (!session) this.#invalidations.add(target);
    // A target too long for one frame cannot be named; its cached answers expire on their own.
    else if (2 + invalidateEntryBytes(target) <= session.peerMaxFrameBytes) session.sendInvalidate([target]);
  }

  /** Ends the link: notifications and in-flight requests get until `deadline`, then GOAWAY and close. */
  async stop(deadline: number): Promise<void> {
    this.#stopping = true;
    this.#connectAbort?.abort();
    this.#sleep.wake();
    const conn = this.#conn;
    if (conn?.established) {
      await this.deps.queue.drained(deadline, conn.session);
      conn.session.goaway(ErrorCode.NO_ERROR, 'agent stopping');
    }
  }

  /** After stop() and the forwarder's drain: closes what is left and waits for the loop to end. */
  async close(): Promise<void> {
    this.#conn?.session.close(ErrorCode.NO_ERROR, 'agent stopping');
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      let delay: number | undefined;
      for (const ep of shuffle(this.endpoints)) {
        if (this.#stopping) return;
        let outcome: ConnectionOutcome | undefined;
        try {
          outcome = await this.#attempt(ep);
        } catch (err) {
          // Whatever went wrong, the agent keeps trying: it is the device's only way in.
          this.deps.log.error('connection attempt failed unexpectedly', { hub: ep.url, err: describeError(err) });
        }
        // Unreachable, or the handshake failed: the next hub of this round may do better.
        if (!outcome || (!outcome.established && !refusesDevice(outcome.goawayCode))) continue;
        delay = this.#delayAfter(outcome);
        break;
      }
      delay ??= this.#backoff.next();
      if (this.#stopping) return;
      this.deps.log.info('reconnecting', { inMs: delay, attempt: this.#backoff.attempt, hubs: this.endpoints.map((e) => e.url) });
      await this.#sleep.for(delay);
    }
  }

  /** One connection: undefined if the transport could not be opened, else how the tunnel ended. */
  async #attempt(ep: HubEndpoint): Promise<ConnectionOutcome | undefined> {
    const { log, timings, forwarder } = this.deps;
    const abort = new AbortController();
    this.#connectAbort = abort;
    log.debug('connecting', { hub: ep.url });
    let duplex: Duplex;
    let lostEarly: Error | undefined;
    try {
      duplex = await connectHub(ep, { ca: this.settings.ca(), timeoutMs: timings.connectTimeoutMs, signal: abort.signal });
    } catch (err) {
      if (!this.#stopping) log.warn('hub unreachable', { hub: ep.url, err: describeError(err) });
      return undefined;
    } finally {
      this.#connectAbort = undefined;
    }
    // Until the session listens, an error must not go unheard (it would crash the process).
    duplex.on('error', (err: Error) => (lostEarly ??= err));
    // Fresh device info for HELLO, fetched once the hub is reachable (the hub waits for HELLO longer).
    let info: Record<string, unknown> = {};
    if (!this.#stopping) info = await this.deps.refreshInfo();
    if (this.#stopping || duplex.destroyed) {
      if (!this.#stopping) log.warn('hub unreachable', { hub: ep.url, err: lostEarly ? describeError(lostEarly) : 'connection closed before HELLO' });
      duplex.destroy();
      return undefined;
    }
    const s = this.settings;
    const conn = new HubConnection(
      ep,
      duplex,
      this.#bootId,
      {
        version: PROTOCOL_VERSION, deviceId: ep.deviceId ?? s.deviceId, secret: ep.secret ?? s.secret, info,
        maxFrameBytes: s.maxFrameBytes, windowBytes: s.windowBytes, maxStreams: s.concurrency,
        ...(s.lan ? { features: [LAN_FEATURE] } : {}),
      },
      { maxFrameBytes: s.maxFrameBytes, windowBytes: s.windowBytes, handshakeTimeoutMs: timings.handshakeTimeoutMs },
      {
        log,
        queue: this.deps.queue,
        onChannel: (ch) => forwarder.handle(ch, conn.session.peerMaxFrameBytes),
        onEstablished: (cn, welcome: Welcome) => {
          this.#hubSpeaksLan = hasFeature(welcome, LAN_FEATURE);
          log.info('connected', { hub: ep.url, transport: ep.transport, bootId: cn.bootId, queuedNotifications: this.deps.queue.size });
          // The hub drops the device's whole cache on connect; the queued targets are sent all the same.
          if (this.#hubSpeaksLan) for (const batch of this.#invalidations.drain(cn.session.peerMaxFrameBytes)) cn.session.sendInvalidate(batch);
          this.emit('connected', ep.url);
        },
        onAck: (seq) => {
          // An ack from a connection under an older bootId numbers other notifications.
          if (conn.bootId !== this.#bootId) return;
          if (this.deps.queue.ack(seq) > 0) this.emit('notification-acked', seq);
        },
      },
    );
    if (this.deps.onLanKeys) conn.session.on('lanKeys', this.deps.onLanKeys);
    if (this.deps.onRevoked) conn.session.on('revoked', this.deps.onRevoked);
    this.#conn = conn;
    const outcome = await conn.done;
    this.#conn = undefined;
    this.#hubSpeaksLan = false;
    if (outcome.established) {
      log.info('disconnected', { hub: ep.url, reason: outcome.reason, heldMs: outcome.heldMs });
      this.emit('disconnected', outcome.reason);
    } else {
      log.warn('tunnel handshake failed', { hub: ep.url, reason: outcome.reason });
    }
    return outcome;
  }

  /** The wait before the next round, from how the last connection ended. */
  #delayAfter(outcome: ConnectionOutcome): number {
    if (refusesDevice(outcome.goawayCode)) return this.#backoff.longest();
    // A connection that held resets the backoff, unless another agent keeps taking the device over.
    if (outcome.established && outcome.heldMs >= this.deps.timings.stableAfterMs && outcome.goawayCode !== ErrorCode.TAKEN_OVER) this.#backoff.reset();
    return this.#backoff.next();
  }

  /** The u32 sequence space is used up: renumber under a new bootId and reconnect with it. */
  #renewBootId(): void {
    this.#bootId = newBootId();
    this.deps.queue.rebase();
    this.deps.log.info('notification sequence wrapped; reconnecting with a new bootId', { bootId: this.#bootId });
    this.#conn?.session.goaway(ErrorCode.NO_ERROR, 'new bootId');
  }
}

function newBootId(): string {
  return randomBytes(12).toString('base64url');
}

/** The hub refused this device's credentials, or revoked it: retrying soon will not help. */
function refusesDevice(code: number | undefined): boolean {
  return code === ErrorCode.AUTH_FAILED || code === ErrorCode.REVOKED;
}
