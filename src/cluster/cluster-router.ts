import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { Bus } from '../core/bus.js';
import type { NodeDirectory, Presence } from '../core/presence.js';
import { DEVICE_NODE_FILTER, decodeDeviceNode } from '../relay/edge/device-node-topic.js';
import type { RequestHead } from '../relay/protocol/heads.js';
import { encodeLanKeys, encodeRevoked } from '../relay/protocol/lan-frames.js';
import type { ControlFrame, Opened, ResponseListener, TunnelRouter } from '../relay/router.js';
import type { NodeLink } from './node-link.js';
import type { NodeLinkPool } from './node-link-pool.js';
import { CODE_HEADER, REASON_HEADER } from './node-link-wire.js';

/** Devices whose node a front remembers; past it the least recently used are read again from Presence. */
const MAX_CACHED_DEVICES = 100_000;
/** While a node stays unreachable, one warning per this interval, not one per request. */
const UNREACHABLE_LOG_MS = 10_000;
/** encodeRevoked's limit per operation (a u16 count). */
const REVOKED_PER_OP = 0xffff;

interface Where {
  nodeId: string;
  at: number;
}

export interface ClusterTunnelRouterDeps {
  /** This node's own tunnels (role all); undefined on a front, which holds none. */
  local: TunnelRouter | undefined;
  presence: Presence;
  nodes: NodeDirectory;
  links: NodeLinkPool;
  bus: Bus;
  log: Logger;
}

/**
 * TunnelRouter of a scaled-out node (docs/scale-out.md): a device held here goes through the local
 * router (synchronously, as on one node); any other goes over a pooled node link to the edge Presence
 * names. Where each device is stays cached on this node and is kept current by the device-changes
 * channel the edges publish on (device-node-topic.ts), so a relayed request reads Redis only for a
 * device this node has not seen since it came online.
 */
export class ClusterTunnelRouter implements TunnelRouter {
  readonly #where = new LRUCache<string, Where>({ max: MAX_CACHED_DEVICES });
  /** Internal URL per node id, read once from the directory; dropped when a link to it fails. */
  readonly #urls = new Map<string, string>();
  readonly #unsubscribe: () => void;
  /** When each unreachable node was last logged (bounded by the nodes of the cluster). */
  readonly #warned = new Map<string, number>();

  constructor(private readonly deps: ClusterTunnelRouterDeps) {
    this.#unsubscribe = deps.bus.subscribe(DEVICE_NODE_FILTER, (topic, payload) => {
      const change = decodeDeviceNode(topic, payload);
      if (change === undefined) return;
      const known = this.#where.get(change.deviceId);
      if (known !== undefined && known.at > change.at) return;
      if (change.nodeId === undefined) this.#where.delete(change.deviceId);
      else this.#where.set(change.deviceId, { nodeId: change.nodeId, at: change.at });
    });
  }

  open(deviceId: string, head: RequestHead, end: boolean, listener: ResponseListener): Opened | Promise<Opened> {
    const local = this.deps.local?.open(deviceId, head, end, listener);
    if (local !== undefined && local !== 'offline') return local;
    return this.#openCached(deviceId, head, end, listener) ?? this.#openRemote(deviceId, head, end, listener);
  }

  /**
   * The common case without a wait: the device's node is cached and a link to it is up, so the stream
   * opens now. Anything else (not cached, no link yet, the link closing) takes #openRemote's way.
   */
  #openCached(deviceId: string, head: RequestHead, end: boolean, listener: ResponseListener): Opened | Promise<Opened> | undefined {
    const where = this.#where.get(deviceId);
    if (where === undefined || where.nodeId === this.deps.presence.nodeId) return undefined;
    const url = this.#urls.get(where.nodeId);
    if (url === undefined) return undefined;
    try {
      const link = this.deps.links.link(url);
      return link instanceof Promise ? undefined : link.open(deviceId, head, end, listener);
    } catch {
      return undefined;
    }
  }

  async #openRemote(deviceId: string, head: RequestHead, end: boolean, listener: ResponseListener): Promise<Opened> {
    const link = await this.#linkFor(deviceId, true);
    if (link === undefined) return 'offline';
    try {
      return await link.open(deviceId, head, end, listener);
    } catch {
      return 'offline'; // the link began to close between the pool's check and this open
    }
  }

  async send(deviceId: string, frame: ControlFrame): Promise<boolean> {
    if (await this.deps.local?.send(deviceId, frame)) return true;
    const link = await this.#linkFor(deviceId, false);
    if (link === undefined) return false;
    if (frame.kind === 'lan-keys') return link.operate(deviceId, 'lan-keys', [], encodeLanKeys(frame.keys));
    let sent = false;
    for (let i = 0; i < frame.entries.length || i === 0; i += REVOKED_PER_OP) {
      sent = (await link.operate(deviceId, 'revoked', [], encodeRevoked(frame.entries.slice(i, i + REVOKED_PER_OP)))) || sent;
    }
    return sent;
  }

  async closeTunnel(deviceId: string, code: number, reason: string): Promise<boolean> {
    if (await this.deps.local?.closeTunnel(deviceId, code, reason)) return true;
    const link = await this.#linkFor(deviceId, false);
    if (link === undefined) return false;
    return link.operate(deviceId, 'close', [[CODE_HEADER, String(code)], [REASON_HEADER, reason]]);
  }

  /**
   * A link to the node holding the device, or undefined when no other node does (or it cannot be
   * reached: its devices are offline from here). `cached` lets a relayed request trust this node's
   * cache; revocations and control frames read Presence, which is never stale.
   */
  async #linkFor(deviceId: string, cached: boolean): Promise<NodeLink | undefined> {
    let where = cached ? this.#where.get(deviceId) : undefined;
    const fromCache = where !== undefined;
    if (where === undefined) {
      const entry = await this.deps.presence.get(deviceId);
      if (entry === undefined) return undefined;
      where = { nodeId: entry.nodeId, at: entry.since };
      const known = this.#where.get(deviceId);
      if (known === undefined || known.at <= where.at) this.#where.set(deviceId, where);
    }
    if (where.nodeId === this.deps.presence.nodeId) return undefined; // ours, and the local router just said it is gone
    const link = await this.#linkTo(where.nodeId, deviceId);
    if (link !== undefined) return link;
    this.#where.delete(deviceId);
    // A cached node that is gone may be old news Presence already replaced: ask it once.
    return fromCache ? this.#linkFor(deviceId, false) : undefined;
  }

  async #linkTo(nodeId: string, deviceId: string): Promise<NodeLink | undefined> {
    let url = this.#urls.get(nodeId);
    if (url === undefined) {
      url = (await this.deps.nodes.nodeInfo(nodeId))?.internalUrl;
      if (url === undefined) return undefined;
      this.#urls.set(nodeId, url);
    }
    try {
      return await this.deps.links.link(url);
    } catch (err) {
      const now = Date.now();
      if (now - (this.#warned.get(nodeId) ?? 0) >= UNREACHABLE_LOG_MS) {
        this.#warned.set(nodeId, now);
        this.deps.log.warn({ nodeId, url, deviceId, err: (err as Error).message }, 'node unreachable; its devices answer offline');
      }
      this.#urls.delete(nodeId);
      return undefined;
    }
  }

  close(): void {
    this.#unsubscribe();
    this.deps.links.close();
  }
}
