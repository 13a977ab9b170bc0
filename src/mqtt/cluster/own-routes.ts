/**
 * This node's own routes as Redis holds them (docs/mqtt.md "Cluster"): `mqtt:routes:<nodeId>`, a hash
 * of the route keys its local sessions subscribe to (a filter, `$share/group/` included) → how many
 * local subscriptions, with the node's TTL, and the node in the sorted set `mqtt:route-nodes` scored
 * by when its routes expire. A filter's first subscription and its last one become deltas, written
 * and announced on `mqtt:route-deltas` once per turn of the event loop; the whole set is written back
 * at start, after a reconnect, or when Redis lost it. ClusterRoutes (routes-redis.ts) reads the others'.
 */
import type { Redis } from 'ioredis';
import { encodeRouteFrame, type RouteDelta } from './routes-codec.js';

/** Deltas wait at most one turn of the event loop, so many SUBSCRIBEs in a row become one frame. */
export const MAX_DELTAS_PER_FRAME = 1000;

export interface OwnRoutesOptions {
  redis: Redis;
  nodeId: string;
  /** `mqtt:routes:<nodeId>` under the key prefix. */
  routesKey: string;
  /** `mqtt:route-nodes` under the key prefix. */
  nodesKey: string;
  deltaChannel: string;
  /** The routes expire this long after their last refresh (`--node-ttl-ms`). */
  ttlMs: number;
  /** A change could not be written: the whole set must be written back once Redis answers. */
  onWriteFailed: (err: Error) => void;
}

export class OwnRoutes {
  readonly #o: OwnRoutesOptions;
  /** Route keys → local subscriptions; what Redis is told, and written back from. */
  readonly #local = new Map<string, number>();
  #pending: RouteDelta[] = [];
  #flushing = false;
  #closed = false;

  constructor(options: OwnRoutesOptions) {
    this.#o = options;
  }

  /** Route keys this node holds. */
  get size(): number {
    return this.#local.size;
  }

  keys(): string[] {
    return [...this.#local.keys()];
  }

  changed(key: string, delta: 1 | -1): void {
    const n = (this.#local.get(key) ?? 0) + delta;
    if (n > 0) this.#local.set(key, n);
    else this.#local.delete(key);
    // Only a filter's first subscription and its last one change what other nodes need to know.
    if (delta === 1 ? n !== 1 : n !== 0) return;
    this.#pending.push({ add: delta === 1, key });
    if (!this.#flushing) {
      this.#flushing = true;
      setImmediate(() => void this.#flush());
    }
  }

  /** The whole set, written and announced (at start, after a reconnect, or when Redis lost it). */
  async writeBack(): Promise<void> {
    const { redis, routesKey, nodesKey, deltaChannel, ttlMs, nodeId } = this.#o;
    const m = redis.multi().del(routesKey);
    const entries = [...this.#local];
    for (let i = 0; i < entries.length; i += MAX_DELTAS_PER_FRAME) {
      const fields: string[] = [];
      for (const [k, n] of entries.slice(i, i + MAX_DELTAS_PER_FRAME)) fields.push(k, String(n));
      m.hset(routesKey, ...fields);
    }
    m.pexpire(routesKey, ttlMs).zadd(nodesKey, Date.now() + ttlMs, nodeId);
    // The other nodes learn the whole set: one frame per batch of adds (removals they learn at their next refresh).
    for (let i = 0; i < entries.length; i += MAX_DELTAS_PER_FRAME) {
      m.publish(deltaChannel, encodeRouteFrame(nodeId, entries.slice(i, i + MAX_DELTAS_PER_FRAME).map(([key]) => ({ add: true, key }))));
    }
    await m.exec();
  }

  /** Kept alive for another TTL; written back whole if Redis had lost them. Throws when Redis does not answer. */
  async refresh(): Promise<void> {
    const { redis, routesKey, nodesKey, ttlMs, nodeId } = this.#o;
    const [[, kept]] = (await redis.multi().pexpire(routesKey, ttlMs).zadd(nodesKey, Date.now() + ttlMs, nodeId).exec()) as [[unknown, number]];
    if (kept === 0 && this.#local.size > 0) await this.writeBack();
  }

  /** No more changes are written (the node is leaving; ClusterRoutes removes the set). */
  close(): void {
    this.#closed = true;
  }

  async #flush(): Promise<void> {
    const { redis, routesKey, nodesKey, deltaChannel, ttlMs, nodeId } = this.#o;
    while (this.#pending.length > 0 && !this.#closed) {
      const batch = this.#pending.splice(0, MAX_DELTAS_PER_FRAME);
      const m = redis.multi();
      for (const d of batch) {
        if (d.add) m.hset(routesKey, d.key, String(this.#local.get(d.key) ?? 1));
        else m.hdel(routesKey, d.key);
      }
      m.pexpire(routesKey, ttlMs);
      m.zadd(nodesKey, Date.now() + ttlMs, nodeId);
      m.publish(deltaChannel, encodeRouteFrame(nodeId, batch));
      try {
        await m.exec();
      } catch (err) {
        // Written back whole once Redis is back: nothing is lost by dropping the batch.
        this.#o.onWriteFailed(err as Error);
      }
    }
    this.#flushing = false;
  }
}
