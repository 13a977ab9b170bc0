/**
 * Sessions across the nodes of a cluster (issue 14 §2), with `--redis` and `--store postgres://`:
 *
 * - A client id is held by at most one node: `mqtt:client:<clientId>` → node id in Redis, owned by
 *   that node like RedisPresence's device entries (void once its heartbeat key expired, written back
 *   after Redis lost it). Opening a session on node B asks the holder A over the bus to hand it over:
 *   A sends DISCONNECT 0x8E (a 3.1.1 client: the connection closes), writes the session's state to
 *   PostgreSQL and acknowledges; B waits for that, bounded by `takeoverTimeoutMs`, then resumes
 *   the session from the database (subscriptions, queue, inflight packet ids, incoming QoS 2 ids).
 * - Each node records its clients' wills in `mqtt:wills:<nodeId>`, and the client ids it holds in
 *   `mqtt:node-sessions:<nodeId>`. When a node's heartbeat key expires, one surviving node (SET NX
 *   `mqtt:dead:<nodeId>`) takes its state over: its persistent sessions come into its memory (their
 *   subscriptions route there, their expiry runs there, their will waits as a pending will) and the
 *   wills of its other clients are published when due, unless the client connected again anywhere.
 * - One node at a time (SET NX `mqtt:sweep`) deletes the stored sessions that expired.
 */
import type { Redis } from 'ioredis';
import type { Bus } from '../../core/bus.js';
import type { NodeDirectory } from '../../core/presence.js';
import { RedisScript } from '../../cluster/redis-script.js';
import type { SessionHost } from '../broker.js';
import type { Will } from '../channel.js';
import type { SessionCluster } from './sessions-hooks.js';
import { TakeoverExchange } from './takeover.js';
import { decodeWill, encodeWill, willDueAt, willMessage, willRecord, type WillRecord } from './wills.js';

export interface ClusterSessionsOptions {
  redis: Redis;
  keyPrefix: string;
  nodeId: string;
  nodeTtlMs: number;
  nodes: NodeDirectory;
  bus: Bus;
  /** How long a node waits for the holder's hand-over before it resumes from the database. */
  takeoverTimeoutMs: number;
  onError: (err: unknown, context: string) => void;
  onInfo: (message: string, details: Record<string, unknown>) => void;
}

/** Sets KEYS[1] to ARGV[2] only while it holds ARGV[1] ('' = absent); 1 if set. */
const COMPARE_AND_SET = new RedisScript(`
local v = redis.call('GET', KEYS[1])
if (v == false and ARGV[1] == '') or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end
return 0`, 1);

/** Deletes KEYS[1] only while it holds ARGV[1]. */
const DELETE_IF = new RedisScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`, 1);

/** How long a node keeps the lock on a dead node's state while it takes it over. */
const DEAD_LOCK_MS = 60_000;
const SWEEP_MS = 60_000;

export class ClusterSessions implements SessionCluster {
  readonly #o: ClusterSessionsOptions;
  readonly #redis: Redis;
  readonly #p: string;
  readonly #me: string;
  #host!: SessionHost;
  /** The encoded wills of this node's clients, by client id: written back after Redis lost them. */
  readonly #wills = new Map<string, WillRecord>();
  /** Wills of dead nodes' clients without a session to wait in, by client id. */
  readonly #deadWills = new Map<string, NodeJS.Timeout>();
  #takeovers!: TakeoverExchange;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #lastSweep = 0;
  #closed = false;
  /** Told once a dead node's sessions are here (their subscriptions route here): its routes can go. */
  onNodeTakenOver: ((nodeId: string) => void) | undefined;
  /** Cut off from Redis (fence.ts): nothing is recorded, no session opens, no dead node is taken over. */
  #fenced = false;

  constructor(options: ClusterSessionsOptions) {
    this.#o = options;
    this.#redis = options.redis;
    this.#p = `${options.keyPrefix}mqtt:`;
    this.#me = options.nodeId;
  }

  /** Joins: listens for take-over requests, takes over what a previous run of this node left, then watches the other nodes. */
  async start(host: SessionHost): Promise<void> {
    this.#host = host;
    const { bus, takeoverTimeoutMs, onError, onInfo } = this.#o;
    this.#takeovers = new TakeoverExchange({ bus, nodeId: this.#me, timeoutMs: takeoverTimeoutMs, handOver: (clientId, principal, cleanStart) => host.handOver(clientId, principal, cleanStart), onError, onInfo });
    await this.#redis.sadd(`${this.#p}nodes`, this.#me);
    // Whatever a previous process with this node id left (it was killed): its wills and sessions.
    await this.#takeOverNode(this.#me, true);
    this.#timer = setInterval(() => void this.#tick(), Math.max(200, Math.floor(this.#o.nodeTtlMs / 3))).unref();
  }

  /**
   * Leaves the cluster on a shutdown: as on one node, a shutdown publishes no wills, so this node's
   * are deleted; its sessions stay listed for a survivor to take (they go on receiving messages there).
   */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#takeovers?.close();
    for (const t of this.#deadWills.values()) clearTimeout(t);
    await this.#ticking;
    await this.#redis.del(this.#willsKey(this.#me)).catch((err: unknown) => this.#o.onError(err, 'mqtt cluster: remove this node\'s wills'));
  }

  /**
   * This node lost Redis (fence.ts) and its clients are gone: what it remembers of wills is dropped
   * (they are in Redis, under this node, for whoever takes its state over), as are the wills of dead
   * nodes it was waiting to publish, which Redis records under this node as well.
   */
  fence(): void {
    this.#fenced = true;
    this.#wills.clear();
    for (const t of this.#deadWills.values()) clearTimeout(t);
    this.#deadWills.clear();
    this.#takeovers.abandon();
  }

  /**
   * Redis answers again: unless another node is taking this one's state over (its lock on
   * `mqtt:dead:<nodeId>`), this node takes back what it left in Redis when fenced, as after a restart:
   * its persistent sessions, and its clients' wills, published when due unless they connected again.
   */
  async rejoin(): Promise<void> {
    const lock = `${this.#p}dead:${this.#me}`;
    if ((await this.#redis.set(lock, this.#me, 'PX', DEAD_LOCK_MS, 'NX')) === 'OK') {
      try {
        await this.#redis.sadd(`${this.#p}nodes`, this.#me);
        await this.#takeOverNode(this.#me, true);
      } finally {
        await DELETE_IF.run(this.#redis, [lock], [this.#me]).catch(() => undefined);
      }
    }
    this.#fenced = false;
  }

  // ---------------------------------------------------------------- SessionCluster (called by the registry)

  async claim(clientId: string, principal: string, cleanStart: boolean): Promise<'claimed' | 'refused'> {
    if (this.#fenced) throw new Error('this node is cut off from Redis');
    const key = this.#clientKey(clientId);
    for (let attempt = 0; attempt < 3; attempt++) {
      const holder = (await this.#redis.get(key)) ?? '';
      if (holder === this.#me) return 'claimed';
      if (holder !== '' && (await this.#o.nodes.nodeAlive(holder)) && (await this.#takeovers.ask(holder, clientId, principal, cleanStart))) return 'refused';
      // The dead node's survivor may have adopted the session meanwhile: then ask that one.
      if ((await COMPARE_AND_SET.run(this.#redis, [key], [holder, this.#me])) === 1) {
        const batch = this.#redis.pipeline().sadd(this.#sessionsKey(this.#me), clientId);
        if (holder !== '') batch.srem(this.#sessionsKey(holder), clientId);
        await batch.exec();
        return 'claimed';
      }
    }
    // Contended three times: take it (the last writer holds it).
    await this.#redis.pipeline().set(key, this.#me).sadd(this.#sessionsKey(this.#me), clientId).exec();
    return 'claimed';
  }

  opened(clientId: string, principal: string, will: Will | undefined, sessionExpiryS: number): void {
    if (this.#closed || this.#fenced) return;
    const batch = this.#redis.pipeline().set(this.#clientKey(clientId), this.#me).sadd(this.#sessionsKey(this.#me), clientId);
    if (will === undefined) {
      this.#wills.delete(clientId);
      batch.hdel(this.#willsKey(this.#me), clientId);
    } else {
      const r = willRecord(clientId, principal, this.#me, will, sessionExpiryS);
      this.#wills.set(clientId, r);
      batch.hset(this.#willsKey(this.#me), clientId, encodeWill(r));
    }
    this.#run(batch.exec(), 'record a session');
  }

  closed(clientId: string, willDueAt: number | undefined): void {
    if (this.#closed || this.#fenced) return;
    const r = this.#wills.get(clientId);
    if (r === undefined) return;
    if (willDueAt === undefined) return this.willDone(clientId);
    r.dueAt = willDueAt;
    this.#run(this.#redis.hset(this.#willsKey(this.#me), clientId, encodeWill(r)), 'record a pending will');
  }

  willDone(clientId: string): void {
    if (this.#closed || this.#fenced) return;
    if (!this.#wills.delete(clientId)) return;
    this.#run(this.#redis.hdel(this.#willsKey(this.#me), clientId), 'remove a will');
  }

  ended(clientId: string): void {
    if (this.#closed || this.#fenced) return;
    this.#wills.delete(clientId);
    const batch = this.#redis.pipeline().hdel(this.#willsKey(this.#me), clientId).srem(this.#sessionsKey(this.#me), clientId);
    this.#run(Promise.all([batch.exec(), DELETE_IF.run(this.#redis, [this.#clientKey(clientId)], [this.#me])]), 'remove a session');
  }

  // ---------------------------------------------------------------- dead nodes, sweep, write-back

  #tick(): Promise<void> {
    if (this.#closed || this.#fenced || this.#ticking !== undefined) return this.#ticking ?? Promise.resolve();
    const run = async () => {
      try {
        await this.#writeBackIfLost();
        for (const node of await this.#redis.smembers(`${this.#p}nodes`)) {
          if (node === this.#me || (await this.#o.nodes.nodeAlive(node))) continue;
          if ((await this.#redis.set(`${this.#p}dead:${node}`, this.#me, 'PX', DEAD_LOCK_MS, 'NX')) === 'OK') await this.#takeOverNode(node, false);
        }
        const now = Date.now();
        if (now - this.#lastSweep >= SWEEP_MS) {
          this.#lastSweep = now;
          if ((await this.#redis.set(`${this.#p}sweep`, this.#me, 'PX', SWEEP_MS, 'NX')) === 'OK') await this.#host.sweepExpired();
        }
      } catch (err) {
        this.#o.onError(err, 'mqtt cluster sessions');
      } finally {
        this.#ticking = undefined;
      }
    };
    this.#ticking = run();
    return this.#ticking;
  }

  /**
   * Takes over the state of `node`, whose heartbeat expired (or a previous run of this node,
   * `self`): its persistent sessions come here, its other clients' wills are published when due.
   */
  async #takeOverNode(node: string, self: boolean): Promise<void> {
    const deathAt = this.#host.now();
    const [wills, clientIds] = await Promise.all([this.#redis.hgetallBuffer(this.#willsKey(node)), this.#redis.smembers(this.#sessionsKey(node))]);
    // Read once, under the lock: what is taken over below is written again under this node's keys
    // (the same keys when `self`).
    const cleanup = this.#redis.pipeline().del(this.#willsKey(node)).del(this.#sessionsKey(node));
    if (!self) cleanup.srem(`${this.#p}nodes`, node);
    await cleanup.exec();
    const byClient = new Map<string, WillRecord>();
    for (const [clientId, bytes] of Object.entries(wills)) {
      const r = decodeWill(bytes);
      if (r !== undefined) byClient.set(clientId, r);
    }
    let sessions = 0;
    let pendingWills = 0;
    for (const clientId of new Set([...clientIds, ...byClient.keys()])) {
      const key = this.#clientKey(clientId);
      const holder = await this.#redis.get(key);
      const r = byClient.get(clientId);
      const origin = r?.origin ?? node;
      // Connected again elsewhere since: that node has the session, and the will is cancelled.
      if (holder !== null && holder !== node && holder !== origin) continue;
      const due = r === undefined ? 0 : willDueAt(r, deathAt);
      if (r !== undefined) r.dueAt = due;
      // A persistent session comes here, its will waiting in it.
      if ((await COMPARE_AND_SET.run(this.#redis, [key], [holder ?? '', this.#me])) !== 1) continue;
      await this.#redis.sadd(this.#sessionsKey(this.#me), clientId);
      if (r !== undefined) {
        this.#wills.set(clientId, r);
        await this.#redis.hset(this.#willsKey(this.#me), clientId, encodeWill(r));
      }
      const adopted = await this.#host.adopt(clientId, deathAt, r === undefined ? undefined : { message: willMessage(r, deathAt), principal: r.principal, dueAt: due });
      if (adopted === 'adopted') {
        sessions++;
        continue;
      }
      if (adopted === 'present') {
        // Its client came back to this node first: the session is this node's, the will void.
        if (r !== undefined) this.willDone(clientId);
        continue;
      }
      // No stored session: the client id is nobody's now, and its will goes when due.
      await DELETE_IF.run(this.#redis, [key], [this.#me]);
      await this.#redis.srem(this.#sessionsKey(this.#me), clientId);
      if (r !== undefined) {
        pendingWills++;
        this.#armDeadWill(clientId, r, due);
      }
    }
    if (!self) this.onNodeTakenOver?.(node);
    if (sessions + pendingWills > 0) this.#o.onInfo(self ? 'mqtt: took over what the previous run of this node left' : 'mqtt: took over the sessions and wills of a dead node', { node, sessions, wills: pendingWills });
  }

  /** A dead node's client without a session: its will goes at `due` unless the client connects again meanwhile. */
  #armDeadWill(clientId: string, r: WillRecord, due: number): void {
    clearTimeout(this.#deadWills.get(clientId));
    // Recorded as this node's, so that it is not lost should this node die too.
    this.#wills.set(clientId, r);
    this.#run(this.#redis.hset(this.#willsKey(this.#me), clientId, encodeWill(r)), 'record a dead node\'s will');
    const fire = async () => {
      this.#deadWills.delete(clientId);
      try {
        const holder = await this.#redis.get(this.#clientKey(clientId));
        if (this.#wills.get(clientId) !== r) return;
        this.willDone(clientId);
        if (holder === null) this.#host.publishWill(clientId, willMessage(r, this.#host.now()), r.principal);
      } catch (err) {
        this.#o.onError(err, 'publish a dead node\'s will');
      }
    };
    this.#deadWills.set(clientId, setTimeout(() => void fire(), Math.max(0, Math.min(due - this.#host.now(), 2_147_483_647))).unref());
  }

  /** Redis lost this node's entries (restarted, flushed): written back, where no other node took a client id meanwhile. */
  async #writeBackIfLost(): Promise<void> {
    if ((await this.#redis.sismember(`${this.#p}nodes`, this.#me)) === 1) return;
    const batch = this.#redis.pipeline().sadd(`${this.#p}nodes`, this.#me);
    for (const clientId of this.#host.sessionIds()) batch.set(this.#clientKey(clientId), this.#me, 'NX').sadd(this.#sessionsKey(this.#me), clientId);
    for (const [clientId, r] of this.#wills) batch.hset(this.#willsKey(this.#me), clientId, encodeWill(r));
    await batch.exec();
    this.#o.onInfo('mqtt: session registry written back to Redis', { sessions: this.#host.sessionIds().length, wills: this.#wills.size });
  }

  #run(p: Promise<unknown>, context: string): void {
    p.catch((err: unknown) => this.#o.onError(err, `mqtt cluster: ${context}`));
  }

  #clientKey(clientId: string): string {
    return `${this.#p}client:${clientId}`;
  }

  #sessionsKey(node: string): string {
    return `${this.#p}node-sessions:${node}`;
  }

  #willsKey(node: string): string {
    return `${this.#p}wills:${node}`;
  }
}
