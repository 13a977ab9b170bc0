/**
 * The broker's routes and forwards across nodes, over Redis (docs/mqtt.md "Cluster").
 *
 * Redis holds, per node, its routes with the node's TTL, refreshed every third of it (own-routes.ts).
 * A node that dies takes its routes with it within the TTL; after a Redis restart or flush (the hash
 * found missing, or a reconnect) the node writes its routes back from memory.
 *
 * Every node keeps the others' routes in a local RouteTable: read whole at start and after each
 * reconnect, then kept current by small binary deltas on the channel `mqtt:route-deltas`, and the dead
 * nodes dropped at each refresh. A PUBLISH then takes no Redis round trip to find its nodes: it is sent
 * once to each node with a matching route on that node's channel `mqtt:fwd:<nodeId>` (forward-codec.ts;
 * the forwards of one event-loop turn to one node in one PUBLISH), from this node's one command
 * connection, so the order per publisher and topic holds. A batch with a QoS 1/2 message is confirmed
 * by its node once stored there, on this node's `mqtt:fwd-ack:<nodeId>` (forward-confirmer.ts); the
 * publisher's PUBACK / PUBREC waits for it. With the session cluster (`holdDeadRoutes`) a dead node's
 * routes stay until a survivor took its sessions over: forwards to it fail meanwhile (0x80), rather
 * than finding no subscriber. Where retained messages live in each node's memory (a store other than
 * PostgreSQL), they go to every node on `mqtt:retained`, which keeps them beside the stored copy; with
 * PostgreSQL every node reads the one table (issue 14) and nothing is sent.
 */
import type { Redis } from 'ioredis';
import type { Broker } from '../broker.js';
import type { Message } from '../message.js';
import type { Delivery } from '../router.js';
import { duplicateRedis } from '../../cluster/redis-connection.js';
import { decodeRetained, encodeForwardFramed, encodeRetained } from './forward-codec.js';
import { Forwards } from './forwards.js';
import { countClients, RateLimitedWarnings } from './routes-support.js';
import type { ClusterRouting, ForwardOutcome } from './routes-hook.js';
import { MAX_DELTAS_PER_FRAME, OwnRoutes } from './own-routes.js';
import { decodeRouteFrame, encodeRouteFrame } from './routes-codec.js';
import { RouteTable } from './routes-table.js';

export interface ClusterRoutesOptions {
  redis: Redis;
  keyPrefix: string;
  nodeId: string;
  /** This node's routes expire this long after its last refresh (`--node-ttl-ms`). */
  nodeTtlMs: number;
  broker: Broker;
  /** How long a QoS 1/2 forward waits for its node's confirmation before its publisher is told it failed (`--mqtt-forward-timeout-ms`). */
  confirmTimeoutMs: number;
  /**
   * A dead node's routes are kept (forwards to it fail) until nodeTakenOver(), or DEAD_ROUTES_MAX_MS:
   * with the session cluster, whose survivor takes its persistent sessions and their subscriptions.
   */
  holdDeadRoutes?: boolean;
  /** True while this node is fenced off from Redis (fence.ts), though its connection may still read as ready. */
  fenced?: () => boolean;
  /** Told (rate-limited by the caller) of Redis failures and refused publishes. */
  onWarning(message: string, details: Record<string, unknown>): void;
}

/** Counters for /metrics and $SYS. */
export interface ClusterRouteStats {
  /** Messages sent to another node (one per node per message). */
  forwardedOut: number;
  /** Messages received from other nodes. */
  forwardedIn: number;
  /** Forwards Redis did not take. */
  forwardFailed: number;
  /** Publishes refused while Redis was away. */
  refused: number;
  /** QoS 1/2 forwards their node did not confirm (in time): their publishers were told of a failure. */
  unconfirmed: number;
}

/** A dead node's held routes go after this long even if no survivor said it took its sessions over. */
const DEAD_ROUTES_MAX_MS = 60_000;

export class ClusterRoutes implements ClusterRouting {
  readonly nodeId: string;
  readonly table = new RouteTable();
  readonly stats: ClusterRouteStats = { forwardedOut: 0, forwardedIn: 0, forwardFailed: 0, refused: 0, unconfirmed: 0 };
  readonly #redis: Redis;
  readonly #sub: Redis;
  readonly #broker: Broker;
  readonly #ttlMs: number;
  readonly #routesKey: string;
  readonly #nodesKey: string;
  readonly #clientsKey: string;
  #totals: { nodes: number; connected: number } | undefined;
  readonly #deltaChannel: string;
  readonly #retainedChannel: string;
  readonly #warnings: RateLimitedWarnings;
  readonly #fenced: ClusterRoutesOptions['fenced'];
  readonly #own: OwnRoutes;
  /** The route table was read whole since the last (re)connect. */
  #synced = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #forwards: Forwards;
  /** How long a dead node's routes are held for its take-over (0: not held). */
  readonly #holdDeadMs: number;
  /** This node's id, prefixed to the frames every node receives, to skip its own. */
  readonly #idHeader: Buffer;

  constructor(o: ClusterRoutesOptions) {
    this.nodeId = o.nodeId;
    this.#redis = o.redis;
    this.#broker = o.broker;
    this.#ttlMs = o.nodeTtlMs;
    const p = o.keyPrefix;
    this.#routesKey = `${p}mqtt:routes:${o.nodeId}`;
    this.#nodesKey = `${p}mqtt:route-nodes`;
    this.#clientsKey = `${p}mqtt:clients`;
    this.#deltaChannel = `${p}mqtt:route-deltas`;
    this.#retainedChannel = `${p}mqtt:retained`;
    this.#warnings = new RateLimitedWarnings(o.nodeId, o.onWarning);
    this.#fenced = o.fenced;
    const id = Buffer.from(o.nodeId);
    this.#idHeader = Buffer.concat([Buffer.from([id.length]), id]);
    this.#holdDeadMs = o.holdDeadRoutes === true ? DEAD_ROUTES_MAX_MS : 0;
    this.#own = new OwnRoutes({
      redis: o.redis, nodeId: o.nodeId, routesKey: this.#routesKey, nodesKey: this.#nodesKey, deltaChannel: this.#deltaChannel, ttlMs: o.nodeTtlMs,
      onWriteFailed: (err) => {
        this.#synced = false;
        this.#warn('route change not written to Redis', { err: err.message });
      },
    });
    this.#forwards = new Forwards({
      redis: o.redis, keyPrefix: p, nodeId: o.nodeId, confirmTimeoutMs: o.confirmTimeoutMs, stats: this.stats,
      deliver: (m, groups, groupsOnly) => o.broker.deliverForwarded(m, groups, groupsOnly),
      warn: (message, details) => this.#warn(message, details),
    });
    this.#sub = duplicateRedis(o.redis, 'cloudrest-mqtt-routes');
    this.#sub.on('messageBuffer', (channel: Buffer, payload: Buffer) => this.#arrived(channel.toString(), payload));
    // After a reconnect: what was missed is read again, and what Redis lost written back.
    this.#sub.on('ready', () => {
      if (this.#synced) return;
      void this.#resync();
    });
    this.#sub.on('close', () => (this.#synced = false));
    this.#redis.on('close', () => (this.#synced = false));
  }

  /** Subscribes, writes this node's routes, reads the others'; then refreshes every third of the TTL. */
  async start(): Promise<void> {
    await this.#sub.connect();
    await this.#sub.subscribe(this.#deltaChannel, this.#retainedChannel, ...this.#forwards.channels);
    await this.#resync();
    this.#timer = setInterval(() => void this.#refresh(), Math.max(100, Math.floor(this.#ttlMs / 3)));
    this.#timer.unref();
  }

  unavailable(): string | undefined {
    if (this.#synced && this.#redis.status === 'ready' && this.#fenced?.() !== true) return undefined;
    this.stats.refused++;
    this.#warn('publish refused: Redis is unreachable, messages cannot be routed to the other nodes', {});
    return 'cluster routing unavailable: Redis unreachable';
  }

  forward(m: Message, local: Delivery[]): ForwardOutcome {
    if (this.table.size === 0) return { local, nodes: 0, sent: undefined };
    let localGroups: string[] | undefined;
    for (const d of local) if (d.group !== undefined) (localGroups ??= []).push(d.group.shareFilter);
    const plan = this.table.plan(m.topic, localGroups);
    let out = local;
    if (plan.notHere !== undefined) {
      const notHere = plan.notHere;
      out = local.filter((d) => d.group === undefined || !notHere.has(d.group.shareFilter));
    }
    if (plan.nodes.size === 0) return { local: out, nodes: 0, sent: undefined };
    const now = Date.now();
    let sent: Promise<boolean> | undefined;
    let many: Array<Promise<boolean>> | undefined;
    // One frame for the nodes picked for no shared group, the common case.
    let plain: Buffer | undefined;
    for (const [nodeId, groups] of plan.nodes) {
      const frame = groups.length === 0 ? (plain ??= encodeForwardFramed(m, undefined, now)) : encodeForwardFramed(m, groups, now);
      this.stats.forwardedOut++;
      const p = this.#forwards.send(nodeId, frame, m.qos > 0);
      if (sent === undefined) sent = p;
      else (many ??= [sent]).push(p);
    }
    if (many !== undefined) sent = Promise.all(many).then((r) => r.every(Boolean));
    return { local: out, nodes: plan.nodes.size, sent };
  }

  redirect(m: Message, group: string): Promise<boolean> | undefined {
    const nodeId = this.table.nodeForGroup(group);
    if (nodeId === undefined) return undefined;
    this.stats.forwardedOut++;
    // Confirmed like any QoS 1/2 forward: the leaving member's copy goes only once the other node stored its own.
    return this.#forwards.send(nodeId, encodeForwardFramed(m, [group], Date.now(), true), m.qos > 0);
  }

  retained(m: Message, owner: string, bytes: number): void {
    const frame = Buffer.concat([this.#idHeader, encodeRetained(m, owner, bytes, Date.now())]);
    this.#redis.publish(this.#retainedChannel, frame).catch((err: unknown) => this.#warn('retained message not sent to the other nodes', { topic: m.topic.slice(0, 200), err: (err as Error).message }));
  }

  routeChanged(key: string, delta: 1 | -1): void {
    this.#own.changed(key, delta);
  }

  /** Routes known on other nodes. */
  get remoteRoutes(): number {
    return this.table.size;
  }

  /** Route keys this node holds. */
  get localRoutes(): number {
    return this.#own.size;
  }

  /** Stops refreshing and removes this node's routes, so no node forwards to it any more. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#own.close();
    this.#forwards.close();
    try {
      const m = this.#redis.multi().del(this.#routesKey).zrem(this.#nodesKey, this.nodeId).hdel(this.#clientsKey, this.nodeId);
      // Held, the routes go once a survivor took this node's persistent sessions (it leaves them listed).
      if (this.#holdDeadMs === 0) m.publish(this.#deltaChannel, encodeRouteFrame(this.nodeId, this.#own.keys().slice(0, MAX_DELTAS_PER_FRAME).map((key) => ({ add: false, key }))));
      await m.exec();
    } catch {
      // Redis away: the routes expire with the TTL.
    }
    this.#sub.disconnect();
  }

  async #resync(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#own.writeBack();
      await this.#readAll();
      this.#synced = true;
    } catch (err) {
      this.#synced = false;
      this.#warn('route table not read from Redis', { err: (err as Error).message });
    }
  }

  /** Every live node's routes; dead nodes dropped. */
  async #readAll(): Promise<void> {
    const live = new Set(await this.#liveNodes());
    this.table.dropDead(live, this.#holdDeadMs, Date.now());
    for (const id of live) {
      if (id === this.nodeId) continue;
      this.table.replace(id, await this.#redis.hkeys(this.#fwdKey(id)));
    }
  }

  #fwdKey(nodeId: string): string {
    return this.#routesKey.slice(0, this.#routesKey.length - this.nodeId.length) + nodeId;
  }

  /**
   * This node took the dead `nodeId`'s sessions over (their subscriptions route here now): its routes
   * are dropped here, from Redis, and, by an empty route frame of that node, on every other node. From
   * Redis too: its heartbeat (presence) may expire before its route entry does, and a refresh reading
   * the node as live with no routes known would take its routes back and hold them as a dead node's.
   * Should the node come back, it writes both again.
   */
  nodeTakenOver(nodeId: string): void {
    this.table.dropNode(nodeId);
    this.#redis.multi().zrem(this.#nodesKey, nodeId).del(this.#fwdKey(nodeId)).hdel(this.#clientsKey, nodeId).publish(this.#deltaChannel, encodeRouteFrame(nodeId, [])).exec()
      .catch((err: unknown) => this.#warn('dead node\'s routes not dropped on the other nodes', { dead: nodeId, err: (err as Error).message }));
  }

  async #liveNodes(): Promise<string[]> {
    const now = Date.now();
    await this.#redis.zremrangebyscore(this.#nodesKey, '-inf', now - this.#ttlMs);
    return this.#redis.zrangebyscore(this.#nodesKey, now, '+inf');
  }

  /** Every third of the TTL: this node's routes kept alive (written back if Redis lost them), dead nodes dropped. */
  async #refresh(): Promise<void> {
    if (this.#closed) return;
    if (!this.#synced) return this.#resync();
    try {
      await this.#own.refresh();
      const live = new Set(await this.#liveNodes());
      this.table.dropDead(live, this.#holdDeadMs, Date.now());
      this.#totals = await countClients(this.#redis, this.#clientsKey, this.nodeId, this.#broker.connections, live);
      // A node this one has no routes of yet (its deltas came before this node listened, or it came back).
      for (const id of live) if (id !== this.nodeId && !this.table.nodeIds().includes(id)) this.table.replace(id, await this.#redis.hkeys(this.#fwdKey(id)));
    } catch (err) {
      this.#synced = false;
      this.#warn('route refresh failed', { err: (err as Error).message });
    }
  }

  /** The cluster's totals for $SYS, as of the last refresh; undefined before the first one or while Redis is away. */
  get totals(): { nodes: number; connected: number } | undefined {
    return this.#synced ? this.#totals : undefined;
  }

  #arrived(channel: string, payload: Buffer): void {
    try {
      if (this.#forwards.arrived(channel, payload)) return;
      if (channel === this.#deltaChannel) {
        const frame = decodeRouteFrame(payload);
        if (frame.nodeId === this.nodeId) return;
        // No deltas: the node is gone (closed, or taken over by a survivor).
        if (frame.deltas.length === 0) return void this.table.dropNode(frame.nodeId);
        for (const d of frame.deltas) {
          if (d.add) this.table.add(frame.nodeId, d.key);
          else this.table.remove(frame.nodeId, d.key);
        }
      } else if (channel === this.#retainedChannel) {
        const idLength = payload[0]!;
        if (payload.toString('utf8', 1, 1 + idLength) === this.nodeId) return;
        const r = decodeRetained(payload.subarray(1 + idLength), Date.now());
        this.#broker.retainForwarded(r.message, r.owner, r.bytes);
      }
    } catch (err) {
      this.#warn('unreadable frame from another node', { channel, err: (err as Error).message });
    }
  }

  #warn(message: string, details: Record<string, unknown>): void {
    this.#warnings.warn(message, details);
  }
}
