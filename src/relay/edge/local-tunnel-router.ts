import type { Presence } from '../../core/presence.js';
import { TunnelChannel } from '../protocol/channel.js';
import type { RequestHead } from '../protocol/heads.js';
import { revokedPerFrame } from '../protocol/lan-frames.js';
import { RouteError, type ControlFrame, type Opened, type ResponseListener, type TunnelRouter } from '../router.js';
import type { DeviceTunnel } from './device-tunnel.js';

/** The part of the tunnel server the router drives: its registry of device tunnels. */
export interface LocalTunnels {
  get(deviceId: string): DeviceTunnel | undefined;
  closeDevice(deviceId: string, code: number, reason: string): boolean;
}

/**
 * TunnelRouter over this process's tunnels (the embedded hub, and an edge's own devices): a device
 * this node does not hold is offline, since here Presence records exactly this node's tunnels; a
 * router for a front asks Presence for the node instead. `open` on a held device answers synchronously
 * with the tunnel's channel itself: no wrapper, no promise on the relay's hot path.
 */
export class LocalTunnelRouter implements TunnelRouter {
  #tunnels: LocalTunnels | undefined;

  /** `tunnels` may come later (`attach`): the tunnel server's own hooks (LAN trust) need the router first. */
  constructor(
    private readonly presence: Presence,
    tunnels?: LocalTunnels,
  ) {
    this.#tunnels = tunnels;
  }

  attach(tunnels: LocalTunnels): void {
    this.#tunnels = tunnels;
  }

  open(deviceId: string, head: RequestHead, end: boolean, listener: ResponseListener): Opened {
    const tunnel = this.#tunnels?.get(deviceId);
    if (tunnel === undefined) return 'offline';
    const opened = tunnel.open(head, end, listener);
    if (opened === null) return 'busy';
    if (opened instanceof TunnelChannel) return opened;
    return {
      started: opened.promise.then(undefined, (err: unknown) => this.#unreachable(deviceId, err)),
      cancel: opened.cancel,
    };
  }

  /** Why a queued request could not start: its device is gone (offline), or is back on another tunnel (disconnected). */
  async #unreachable(deviceId: string, cause: unknown): Promise<never> {
    const where = await this.presence.get(deviceId);
    throw new RouteError(where === undefined ? 'CR_ERR_DEVICE_OFFLINE' : 'CR_ERR_DEVICE_DISCONNECTED', { cause });
  }

  async send(deviceId: string, frame: ControlFrame): Promise<boolean> {
    const session = this.#tunnels?.get(deviceId)?.session;
    if (session === undefined || session.closed) return false;
    switch (frame.kind) {
      case 'lan-keys':
        session.sendLanKeys(frame.keys);
        break;
      case 'revoked': {
        const { entries } = frame;
        const per = revokedPerFrame(session.peerMaxFrameBytes);
        for (let i = 0; i < entries.length; i += per) {
          session.sendRevoked(entries.slice(i, i + per).map((r) => ({ tokenHash: r.tokenHash, expiresAt: r.expiresAt })));
        }
        break;
      }
    }
    return true;
  }

  async closeTunnel(deviceId: string, code: number, reason: string): Promise<boolean> {
    return this.#tunnels?.closeDevice(deviceId, code, reason) ?? false;
  }
}
