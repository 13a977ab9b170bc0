import type { Logger } from 'pino';
import type { Bus } from '../../core/bus.js';
import { TOKENS_REVOKED_TOPIC, decodeRevocation, type Revocation } from '../../core/token-revocation.js';
import type { Store } from '../../store/store.js';
import { hasFeature, type Hello } from '../protocol/handshake.js';
import { LAN_FEATURE, type RevokedEntry } from '../protocol/lan-frames.js';
import type { PublicTokenKey } from '../protocol/signed-token.js';
import type { TunnelRouter } from '../router.js';
import type { DeviceTunnel } from './device-tunnel.js';

export interface LanTrustDeps {
  store: Store;
  bus: Bus;
  log: Logger;
  /** How the frames reach the agents. */
  router: TunnelRouter;
  /** The keys that sign this hub's access tokens. */
  keys: readonly PublicTokenKey[];
  /** Drops cached answers for a request target of a device (a LAN write changed it). */
  invalidate: (deviceId: string, target: string) => void;
}

interface Registration {
  userId: string | undefined;
  /** A take-over replaces the registration; the old tunnel's close leaves the new one alone. */
  readonly tunnel: DeviceTunnel;
}

/** Revocations sent to one agent at connect: the newest, so a device's list stays bounded. */
export const MAX_REVOKED_PER_DEVICE = 10_000;
/** Targets one INVALIDATE may name; more are a peer misbehaving, and the whole device is dropped instead. */
const MAX_INVALIDATE_TARGETS = 1024;
const PURGE_INTERVAL_MS = 3600_000;

/**
 * What a device needs to serve its owner on the LAN without the hub, and what the hub needs back
 * (docs/protocol.md "LAN access"): at connect, the token signing keys (LAN_KEYS) and the owner's
 * revoked-but-unexpired tokens (REVOKED); later, each revocation as it happens (bus topic
 * auth/tokens/revoked); from the agent, the targets a LAN write changed (INVALIDATE), dropped from the
 * relay cache. Only agents whose HELLO lists the "lan" feature get these frames.
 *
 * The tunnel server tells it of this node's tunnels (opened, closed); the frames go out through the
 * TunnelRouter, by device id, to whichever tunnel of the device is current.
 */
export class LanTrustSync {
  /** Devices with a LAN-capable agent by their owner's user id: who gets a new revocation. */
  readonly #byUser = new Map<string, Set<string>>();
  /** Per device, the LAN-capable tunnel that registered it and (once read) its owner. */
  readonly #userOf = new Map<string, Registration>();
  readonly #unsubscribe: () => void;
  readonly #purge: NodeJS.Timeout;

  constructor(private readonly deps: LanTrustDeps) {
    this.#unsubscribe = deps.bus.subscribe(TOKENS_REVOKED_TOPIC, (_t, payload) => this.#onRevoked(payload));
    this.#purge = setInterval(() => {
      deps.store.deleteExpiredRevokedTokens(Date.now()).catch((err: unknown) => deps.log.error({ err }, 'purging expired revocations failed'));
    }, PURGE_INTERVAL_MS);
    this.#purge.unref();
  }

  /** The WELCOME `features` of this hub. */
  get features(): string[] {
    return [LAN_FEATURE];
  }

  /** A tunnel was established: send keys and the owner's revocations if the agent speaks LAN frames. */
  async opened(tunnel: DeviceTunnel, hello: Hello): Promise<void> {
    const { deviceId } = tunnel;
    // Called in the order the tunnels took over: whatever an earlier tunnel of the device registered is void.
    this.#forget(deviceId);
    if (!hasFeature(hello, LAN_FEATURE)) return;
    const entry: Registration = { userId: undefined, tunnel };
    this.#userOf.set(deviceId, entry);
    const { store, router } = this.deps;
    await router.send(deviceId, { kind: 'lan-keys', keys: this.deps.keys });
    const device = await store.getDevice(deviceId);
    const user = device?.email ? await store.getUserByEmail(device.email) : undefined;
    if (!user || tunnel.session.closed || this.#userOf.get(deviceId) !== entry) return;
    // Registered before the list is read: a revocation published meanwhile is sent twice, never lost.
    entry.userId = user.id;
    let set = this.#byUser.get(user.id);
    if (!set) this.#byUser.set(user.id, (set = new Set()));
    set.add(deviceId);
    const revoked = await store.listRevokedTokens(user.id, Date.now(), MAX_REVOKED_PER_DEVICE);
    if (this.#userOf.get(deviceId) === entry) this.#send(deviceId, revoked);
  }

  closed(tunnel: DeviceTunnel): void {
    if (this.#userOf.get(tunnel.deviceId)?.tunnel === tunnel) this.#forget(tunnel.deviceId);
  }

  #forget(deviceId: string): void {
    const was = this.#userOf.get(deviceId);
    if (was === undefined) return;
    this.#userOf.delete(deviceId);
    if (was.userId === undefined) return;
    const set = this.#byUser.get(was.userId);
    set?.delete(deviceId);
    if (set?.size === 0) this.#byUser.delete(was.userId);
  }

  /** INVALIDATE from an agent: a LAN write changed these targets. */
  invalidated(tunnel: DeviceTunnel, targets: string[]): void {
    if (targets.length > MAX_INVALIDATE_TARGETS) {
      this.deps.invalidate(tunnel.deviceId, '*');
      return;
    }
    for (const t of targets) this.deps.invalidate(tunnel.deviceId, t);
    this.deps.log.debug({ deviceId: tunnel.deviceId, targets }, 'cache invalidated by a LAN write');
  }

  close(): void {
    this.#unsubscribe();
    clearInterval(this.#purge);
  }

  /** Authenticator.revoke recorded these in the Store before publishing; here they go to the agents online. */
  #onRevoked(payload: Buffer): void {
    let e: Revocation;
    try {
      e = decodeRevocation(payload);
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'ignored a malformed token revocation event');
      return;
    }
    for (const deviceId of this.#byUser.get(e.userId) ?? []) this.#send(deviceId, e.tokens);
  }

  #send(deviceId: string, entries: readonly RevokedEntry[]): void {
    if (entries.length === 0) return;
    this.deps.router.send(deviceId, { kind: 'revoked', entries }).catch((err: unknown) => this.deps.log.error({ err, deviceId }, 'sending revocations failed'));
  }
}
