/**
 * Fencing a node cut off from Redis (issue 14: a partition between a node and Redis, while the other
 * nodes keep it). Such a node's presence expires after `--node-ttl-ms`, and then another node takes its
 * sessions and wills over: were its clients still connected here, one client id would be live on two
 * nodes. So once Redis has not answered for half the TTL (before the presence can expire), this node
 * ends its MQTT clients (5.0: DISCONNECT 0x9C Use another server; 3.1.1: the connection closes), lets
 * their sessions go from memory (their state is in PostgreSQL) without publishing their wills (the
 * survivor does, or this node when it rejoins in time), refuses CONNECT with 0x88 and QoS>=1 PUBLISH
 * with 0x80 (routes-redis.ts) until Redis answers again; then it rejoins (sessions.ts `rejoin`; its
 * presence and routes are written back by their own reconnect handling) and accepts again.
 */
import type { RedisLiveness } from '../../cluster/redis-liveness.js';
import type { SessionHost } from '../broker.js';
import { RC } from '../reason-codes.js';
import type { ClusterSessions } from './sessions.js';

export interface FenceOptions {
  liveness: RedisLiveness;
  nodeTtlMs: number;
  host: SessionHost;
  sessions: ClusterSessions;
  onWarning: (message: string, details: Record<string, unknown>) => void;
  onInfo: (message: string, details: Record<string, unknown>) => void;
  onError: (err: unknown, context: string) => void;
}

export class MqttFence {
  readonly #o: FenceOptions;
  /** Silent this long, the node fences itself: half the TTL, so well before its presence expires. */
  readonly #afterMs: number;
  #fenced = false;
  #fencedAt = 0;
  #rejoining = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: FenceOptions) {
    this.#o = options;
    this.#afterMs = Math.floor(options.nodeTtlMs / 2);
  }

  get fenced(): boolean {
    return this.#fenced;
  }

  start(): void {
    this.#o.liveness.start();
    this.#timer ??= setInterval(() => this.#check(), Math.max(50, Math.floor(this.#o.liveness.probeMs / 2)));
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#o.liveness.stop();
  }

  #check(): void {
    const { liveness } = this.#o;
    if (!this.#fenced) {
      const silentMs = liveness.silentForMs();
      if (silentMs < this.#afterMs) return;
      this.#fenced = true;
      this.#fencedAt = Date.now();
      this.#o.sessions.fence();
      this.#o.host.fenceAll(RC.USE_ANOTHER_SERVER, 'this node lost Redis: connect to another node');
      this.#o.onWarning('mqtt cluster: fenced off, Redis has not answered; clients sent to other nodes, new ones refused until it does', { silentMs });
      return;
    }
    // Heard from since the fence went up: rejoin, and accept clients again once that is done.
    if (this.#rejoining || liveness.lastContactAt <= this.#fencedAt) return;
    this.#rejoining = true;
    this.#o.sessions.rejoin().then(
      () => {
        this.#fenced = false;
        this.#o.onInfo('mqtt cluster: Redis answers again, this node rejoined the cluster', { fencedForMs: Date.now() - this.#fencedAt });
      },
      (err: unknown) => this.#o.onError(err, 'mqtt cluster: rejoin after a fence'),
    ).finally(() => (this.#rejoining = false));
  }
}
