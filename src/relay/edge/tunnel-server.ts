import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Bus } from '../../core/bus.js';
import type { Presence } from '../../core/presence.js';
import { deviceSecretMatches } from '../../core/device-credentials.js';
import type { Store } from '../../store/store.js';
import { ErrorCode, PROTOCOL_VERSION } from '../protocol/frames.js';
import { TunnelSession, type Hello } from '../protocol/session.js';
import { DeviceTunnel, moveQueue } from './device-tunnel.js';
import type { HubMetrics } from '../../core/metrics.js';
import type { LanTrustSync } from './lan-trust.js';
import { LogLimiter } from '../../core/log-limiter.js';
import { TunnelAdmission } from './tunnel-admission.js';
import { deviceNodeTopic, encodeDeviceNode } from './device-node-topic.js';

/** Kind of the rate-limited log lines of refused connections (src/core/log-limiter.ts). */
const REFUSED = 'tunnel refused';

export interface TunnelServerOptions {
  maxFrameBytes: number;
  windowBytes: number;
  pingIntervalMs: number;
  idleTimeoutMs: number;
  /** Time from accept to a complete, accepted HELLO (absolute: bytes arriving do not extend it). */
  handshakeTimeoutMs: number;
  /** Authenticated tunnels at once (connections in the handshake count apart, `maxHandshakes`). */
  maxTunnels: number;
  /** Connections in the handshake at once, hub-wide; past it the oldest without a HELLO is dropped. */
  maxHandshakes: number;
  /** Connections per client address (IPv6 by /64), handshake or authenticated; 0 = no limit. */
  maxPerAddress: number;
  maxInflightPerDevice: number;
  maxQueuedPerDevice: number;
}

export interface TunnelServerDeps {
  store: Store;
  bus: Bus;
  presence: Presence;
  log: Logger;
  metrics: HubMetrics;
  /** Called when a device (re)connects, with the info it reported: cached state is dropped, its email looked at. */
  onDeviceConnected?: (deviceId: string, info: Record<string, unknown>) => void;
  /** LAN access: keys and revocations to agents, cache invalidations from them (docs/protocol.md). */
  lan?: LanTrustSync;
  /** Rate limit for the log lines a stranger causes (refused HELLOs); without it each is written. */
  refusals?: LogLimiter;
}

const MAX_ID_CHARS = 128;
/** GOAWAY reason text for a revoked device (docs/protocol.md). */
export const DEVICE_REVOKED_REASON = 'device revoked';
const MAX_SECRET_CHARS = 512;
/** GOAWAY SHUTTING_DOWN reasons of the connection limits (docs/protocol.md "Handshake"). */
const TOO_MANY_TUNNELS = 'too many tunnels';
const TOO_MANY_HANDSHAKES = 'too many tunnel handshakes';
const TOO_MANY_FROM_ADDRESS = 'too many tunnels from this address';

/** Topic names on the Bus for a device's notifications and up/down status. */
export const deviceEventsTopic = (id: string): string => `devices/${id}/events`;
export const deviceStatusTopic = (id: string): string => `devices/${id}/status`;

/**
 * The edge: accepts agent connections on any transport, authenticates them, keeps the registry of
 * device tunnels (one per device; a new one takes over atomically), enforces heartbeats and turns
 * NOTIFY frames into Bus messages.
 */
export class TunnelServer {
  readonly #tunnels = new Map<string, DeviceTunnel>();
  /** Every session, including those still in the handshake. */
  readonly #sessions = new Set<TunnelSession>();
  /** Sessions in the handshake (deadline, hub-wide cap) and connections per address. */
  readonly #admission: TunnelAdmission<TunnelSession>;
  /** Sessions past WELCOME and not closed yet (also draining ones): what --max-tunnels counts. */
  #authenticated = 0;
  readonly #refusals: LogLimiter;
  /** Per device, the last NOTIFY seq published and the agent process (bootId) it came from. */
  readonly #notifySeen = new Map<string, { bootId: string; seq: number }>();
  /** Sessions whose HELLO is being checked, by device id (bounded by the sessions, maxTunnels). */
  readonly #checking = new Map<string, Set<TunnelSession>>();
  readonly #sweep: NodeJS.Timeout;
  #shuttingDown = false;

  constructor(
    private readonly opts: TunnelServerOptions,
    private readonly deps: TunnelServerDeps,
  ) {
    this.#admission = new TunnelAdmission({ handshakeTimeoutMs: opts.handshakeTimeoutMs, maxHandshakes: opts.maxHandshakes, maxPerAddress: opts.maxPerAddress });
    this.#refusals = deps.refusals ?? new LogLimiter(deps.log, { intervalMs: 0, maxKeys: 1 });
    this.#sweep = setInterval(() => this.#sweepIdle(), Math.max(50, Math.min(1000, opts.idleTimeoutMs / 4, opts.handshakeTimeoutMs / 4)));
    this.#sweep.unref();
  }

  get size(): number {
    return this.#tunnels.size;
  }

  get(deviceId: string): DeviceTunnel | undefined {
    return this.#tunnels.get(deviceId);
  }

  isOnline(deviceId: string): boolean {
    return this.#tunnels.has(deviceId);
  }

  /** Takes a new agent connection on any transport. */
  accept(duplex: Duplex, remoteAddress: string, transport: 'tcp' | 'tls' | 'ws' | 'wss'): void {
    const { log, metrics } = this.deps;
    const session = new TunnelSession(duplex, 'hub', { maxFrameBytes: this.opts.maxFrameBytes, windowBytes: this.opts.windowBytes });
    if (this.#shuttingDown) {
      session.close(ErrorCode.SHUTTING_DOWN, 'hub is shutting down');
      return;
    }
    const admission = this.#admission.admit(session, remoteAddress, Date.now());
    if (!admission.admitted) {
      const reason = admission.why === 'address' ? TOO_MANY_FROM_ADDRESS : TOO_MANY_HANDSHAKES;
      this.#refusals.warn(REFUSED, remoteAddress, { remoteAddress, transport, reason }, `tunnel refused: ${reason}`);
      metrics.tunnelRefused.inc({ reason: admission.why });
      session.close(ErrorCode.SHUTTING_DOWN, reason);
      return;
    }
    if (admission.evicted) {
      metrics.tunnelRefused.inc({ reason: 'handshakes' });
      admission.evicted.close(ErrorCode.SHUTTING_DOWN, TOO_MANY_HANDSHAKES);
    }
    this.#sessions.add(session);
    metrics.tunnelConnections.inc({ transport });
    let tunnel: DeviceTunnel | undefined;
    session.on('hello', (hello: Hello) => {
      this.#admission.helloSeen(session);
      this.#authenticate(session, hello, remoteAddress).then(
        (t) => {
          tunnel = t;
        },
        (err: unknown) => {
          log.error({ err }, 'tunnel handshake failed');
          session.close(ErrorCode.INTERNAL_ERROR, 'internal error');
        },
      );
    });
    session.on('notify', (seq: number, text: Buffer) => {
      if (tunnel) this.#onNotify(tunnel, seq, text);
    });
    session.on('invalidate', (targets: string[]) => {
      if (tunnel) this.deps.lan?.invalidated(tunnel, targets);
    });
    session.on('protocolError', (err: Error) => {
      metrics.tunnelProtocolErrors.inc();
      // Before the handshake anyone can cause this (a HELLO that is not JSON, a wrong version): rate-limited.
      if (tunnel) log.warn({ deviceId: tunnel.deviceId, remoteAddress, err: err.message }, 'tunnel protocol error; connection closed');
      else this.#refusals.warn(REFUSED, remoteAddress, { remoteAddress, err: err.message }, 'tunnel refused: protocol error in the handshake');
    });
    session.on('internalError', (err: unknown) => log.error({ err, deviceId: tunnel?.deviceId }, 'tunnel internal error'));
    session.once('close', () => {
      this.#sessions.delete(session);
      this.#admission.closed(session);
      if (session.established) this.#authenticated--; // established is set by sendWelcome, right after the count
      metrics.tunnelConnections.dec({ transport });
      if (tunnel) this.#onTunnelClosed(tunnel);
    });
  }

  async #authenticate(session: TunnelSession, hello: Hello, remoteAddress: string): Promise<DeviceTunnel | undefined> {
    const { deviceId, secret, bootId, info, maxStreams } = hello;
    if (typeof deviceId !== 'string' || deviceId.length === 0 || deviceId.length > MAX_ID_CHARS
      || typeof secret !== 'string' || secret.length > MAX_SECRET_CHARS
      || (bootId !== undefined && typeof bootId !== 'string')
      || (info !== undefined && (typeof info !== 'object' || info === null || Array.isArray(info)))
      || (maxStreams !== undefined && (!Number.isInteger(maxStreams) || maxStreams < 1))) {
      this.#refusals.warn(REFUSED, remoteAddress, { remoteAddress }, 'tunnel refused: malformed HELLO');
      session.close(ErrorCode.PROTOCOL_ERROR, 'malformed HELLO: deviceId, secret, bootId, info, maxStreams');
      return undefined;
    }
    // While its HELLO is checked the session is findable by device id, so a revocation arriving in
    // that window (closeDevice) closes it too: admission stops at its `session.closed` check.
    const checking = this.#checking.get(deviceId) ?? new Set<TunnelSession>();
    checking.add(session);
    this.#checking.set(deviceId, checking);
    try {
      return await this.#admit(session, hello, remoteAddress);
    } finally {
      checking.delete(session);
      if (checking.size === 0 && this.#checking.get(deviceId) === checking) this.#checking.delete(deviceId);
    }
  }

  async #admit(session: TunnelSession, hello: Hello, remoteAddress: string): Promise<DeviceTunnel | undefined> {
    const { store, log } = this.deps;
    const { deviceId, secret, bootId, info, maxStreams } = hello;
    if (this.#full(deviceId)) return this.#refuseFull(session, deviceId, remoteAddress);
    const device = await store.getDevice(deviceId);
    if (!deviceSecretMatches(device, secret)) {
      this.#refusals.warn(REFUSED, remoteAddress, { deviceId, remoteAddress, reason: device ? 'wrong secret' : 'unknown device' }, 'tunnel refused: authentication failed');
      this.deps.metrics.tunnelAuthFailures.inc();
      session.close(ErrorCode.AUTH_FAILED, 'unknown device id or wrong secret');
      return undefined;
    }
    // Checked after the secret, so only the device's own agent learns that it is revoked.
    if (device.revokedAt !== null) {
      this.#refusals.warn(REFUSED, remoteAddress, { deviceId, remoteAddress, revokedAt: new Date(device.revokedAt).toISOString() }, 'tunnel refused: device revoked');
      this.deps.metrics.tunnelAuthFailures.inc();
      session.close(ErrorCode.REVOKED, DEVICE_REVOKED_REASON);
      return undefined;
    }
    // Save what the device reports (its email decides who owns it) before it is reachable.
    if (this.#full(deviceId)) return this.#refuseFull(session, deviceId, remoteAddress);
    const now = Date.now();
    await store.updateDeviceInfo(deviceId, info ?? {}, now);
    if (session.closed) return undefined;
    // Checked again with no await before WELCOME, so concurrent handshakes cannot overshoot the limit.
    if (this.#full(deviceId)) return this.#refuseFull(session, deviceId, remoteAddress);
    this.#admission.established(session);
    this.#authenticated++;
    session.sendWelcome(
      {
        version: PROTOCOL_VERSION, pingIntervalMs: this.opts.pingIntervalMs, idleTimeoutMs: this.opts.idleTimeoutMs, maxFrameBytes: this.opts.maxFrameBytes, windowBytes: this.opts.windowBytes,
        ...(this.deps.lan ? { features: this.deps.lan.features } : {}),
      },
      hello,
    );
    const maxInflight = Math.min(this.opts.maxInflightPerDevice, maxStreams ?? this.opts.maxInflightPerDevice);
    const tunnel = new DeviceTunnel(deviceId, session, bootId ?? '', now, remoteAddress, maxInflight, this.opts.maxQueuedPerDevice);
    this.deps.onDeviceConnected?.(deviceId, info ?? {});
    const old = this.#tunnels.get(deviceId);
    // Take-over: the registry points at the new tunnel before the old one is told to go, so a request
    // arriving in between finds a tunnel either way.
    this.#tunnels.set(deviceId, tunnel);
    // The Map behind the embedded Presence is updated before this returns; a scaled one in its own time.
    this.deps.presence.set(deviceId, now).catch((err: unknown) => log.error({ err, deviceId }, 'recording presence failed'));
    // Fronts update their device → node cache, and another edge still holding the device lets go.
    this.deps.bus.publish(deviceNodeTopic(deviceId), encodeDeviceNode(this.deps.presence.nodeId, now));
    // An agent that reconnects resends what we had not acknowledged; drop what was already published.
    const seen = this.#notifySeen.get(deviceId);
    if (seen && seen.bootId === tunnel.bootId) tunnel.lastNotifySeq = seen.seq;
    if (old) {
      moveQueue(old, tunnel);
      old.session.goaway(ErrorCode.TAKEN_OVER, 'another connection for this device took over');
      log.info({ deviceId, remoteAddress, previous: old.remoteAddress }, 'device tunnel taken over');
    } else {
      this.deps.metrics.devicesOnline.set(this.#tunnels.size);
      this.#publishStatus(deviceId, true, now);
    }
    log.info({ deviceId, remoteAddress, bootId }, 'device connected');
    this.deps.lan?.opened(tunnel, hello).catch((err: unknown) => log.error({ err, deviceId }, 'sending LAN keys and revocations failed'));
    return tunnel;
  }

  /** At --max-tunnels; a device taking over its own tunnel is let in (the old one is going). */
  #full(deviceId: string): boolean {
    return this.#authenticated >= this.opts.maxTunnels && !this.#tunnels.has(deviceId);
  }

  #refuseFull(session: TunnelSession, deviceId: string, remoteAddress: string): undefined {
    this.#refusals.warn(REFUSED, remoteAddress, { deviceId, remoteAddress, reason: TOO_MANY_TUNNELS }, `tunnel refused: ${TOO_MANY_TUNNELS}`);
    this.deps.metrics.tunnelRefused.inc({ reason: 'tunnels' });
    session.close(ErrorCode.SHUTTING_DOWN, TOO_MANY_TUNNELS);
    return undefined;
  }

  /**
   * Closes the device's tunnel now (not a graceful GOAWAY: requests in flight fail), e.g. with REVOKED
   * when the device was revoked, and any of its connections still in the handshake. False if the
   * device had no established tunnel here.
   */
  closeDevice(deviceId: string, code: number, reason: string): boolean {
    for (const s of this.#checking.get(deviceId) ?? []) s.close(code, reason);
    const tunnel = this.#tunnels.get(deviceId);
    if (tunnel === undefined) return false;
    this.deps.log.info({ deviceId, code, reason }, 'device tunnel closed by the hub');
    tunnel.session.close(code, reason);
    return true;
  }

  /**
   * Another node took the device over at `at` (docs/scale-out.md): its tunnel here, if it is older,
   * is dropped with TAKEN_OVER, and no offline status goes out, since the device never went offline.
   * A device is never reachable through two edges. False when this node held no older tunnel.
   */
  yieldDevice(deviceId: string, at: number): boolean {
    const tunnel = this.#tunnels.get(deviceId);
    if (tunnel === undefined || tunnel.connectedAt > at) return false;
    this.#tunnels.delete(deviceId);
    this.deps.metrics.devicesOnline.set(this.#tunnels.size);
    this.deps.presence.delete(deviceId).catch((err: unknown) => this.deps.log.error({ err, deviceId }, 'clearing presence failed'));
    this.deps.log.info({ deviceId }, 'device tunnel taken over by another node');
    tunnel.session.goaway(ErrorCode.TAKEN_OVER, 'another connection for this device took over');
    return true;
  }

  #onNotify(tunnel: DeviceTunnel, seq: number, text: Buffer): void {
    // Resent after a reconnect and already published: acknowledge again, publish once.
    if (seq > tunnel.lastNotifySeq || seq === 0) {
      if (seq !== 0) {
        tunnel.lastNotifySeq = seq;
        this.#notifySeen.set(tunnel.deviceId, { bootId: tunnel.bootId, seq });
      }
      this.deps.bus.publish(deviceEventsTopic(tunnel.deviceId), text);
      this.deps.metrics.notifications.inc();
    }
    tunnel.session.sendNotifyAck(seq);
  }

  #onTunnelClosed(tunnel: DeviceTunnel): void {
    tunnel.failQueued(new Error('device disconnected'));
    this.deps.lan?.closed(tunnel);
    if (this.#tunnels.get(tunnel.deviceId) !== tunnel) return; // replaced: the device never went offline
    this.#tunnels.delete(tunnel.deviceId);
    this.deps.presence.delete(tunnel.deviceId).catch((err: unknown) => this.deps.log.error({ err, deviceId: tunnel.deviceId }, 'clearing presence failed'));
    this.deps.metrics.devicesOnline.set(this.#tunnels.size);
    const now = Date.now();
    this.deps.bus.publish(deviceNodeTopic(tunnel.deviceId), encodeDeviceNode(undefined, now));
    this.#publishStatus(tunnel.deviceId, false, now);
    this.deps.store.touchDevice(tunnel.deviceId, now).catch((err: unknown) => this.deps.log.error({ err }, 'saving lastSeen failed'));
    this.deps.log.info({ deviceId: tunnel.deviceId }, 'device disconnected');
  }

  #publishStatus(deviceId: string, online: boolean, at: number): void {
    this.deps.bus.publish(deviceStatusTopic(deviceId), Buffer.from(JSON.stringify({ online, at: new Date(at).toISOString() })));
  }

  #sweepIdle(): void {
    const now = Date.now();
    // The handshake deadline counts from accept, whatever arrives meanwhile (a HELLO trickled a byte at a time).
    for (const s of this.#admission.expired(now)) {
      this.deps.metrics.tunnelRefused.inc({ reason: 'timeout' });
      s.close(ErrorCode.TIMEOUT, 'no HELLO in time');
    }
    for (const s of this.#sessions) {
      if (s.established && now - s.lastReceivedAt > this.opts.idleTimeoutMs) s.destroy(new Error('tunnel idle timeout'));
    }
  }

  /**
   * Graceful stop: GOAWAY SHUTTING_DOWN to every agent, wait for in-flight requests up to the
   * deadline, then close whatever is left.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.#shuttingDown = true;
    clearInterval(this.#sweep);
    for (const s of this.#sessions) s.goaway(ErrorCode.SHUTTING_DOWN, 'hub is shutting down');
    const deadline = Date.now() + graceMs;
    while (this.#sessions.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
    for (const s of [...this.#sessions]) s.close(ErrorCode.SHUTTING_DOWN, 'hub is shutting down');
  }
}
