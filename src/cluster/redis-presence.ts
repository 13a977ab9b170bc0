/**
 * Presence in Redis (seed 002 "Improving the architecture"): one heartbeat key per node,
 * `node:<nodeId>`, with a TTL of `nodeTtlMs`, refreshed every third of it; and one entry per online
 * device, `device:<deviceId>` → `<nodeId> <since>`, owned by its node and without a TTL, so an idle
 * device costs no Redis traffic at all. An entry counts only while its node's heartbeat key exists: a
 * node that dies takes its devices offline everywhere once its key expires, without anyone deleting
 * their entries.
 *
 * Each node keeps what it holds in memory, so when Redis lost it (restarted or flushed: found by the
 * heartbeat's own key missing, or by a reconnect) the node writes it back within one heartbeat period,
 * and no device is disconnected. Entries are written back only where no other node took the device
 * meanwhile (SET NX).
 */
import type { Redis } from 'ioredis';
import type { NodeDirectory, NodeInfo, Presence, PresenceEntry } from '../core/presence.js';
import { redisCall, redisUnavailable } from './redis-connection.js';
import { RedisScript } from './redis-script.js';

export interface RedisPresenceOptions {
  redis: Redis;
  keyPrefix: string;
  nodeId: string;
  /** A node whose heartbeat key is older than this is dead (`config.nodeTtlMs`). */
  nodeTtlMs: number;
  /** Told when a heartbeat or a write-back failed (Redis away); the next heartbeat tries again. */
  onError?: (err: unknown) => void;
}

/** Deletes a device's entry only while it still names this node: a take-over by another node stays. */
const DELETE_IF_OURS = new RedisScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then return redis.call('DEL', KEYS[1]) end
return 0`, 1);

/**
 * Deletes a device's entry of a dead node: one that still names that node (KEYS[1], ARGV[1]) while the
 * node's heartbeat key (KEYS[2]) is gone, checked together so a node coming back keeps its entries.
 */
const DELETE_IF_DEAD = new RedisScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then return redis.call('DEL', KEYS[1]) end
return 0`, 1);

/** Devices let go during an outage that are remembered for clearing; past it, their entries wait for their node's next take-over or death. */
const MAX_LET_GO = 100_000;

/** Writes at most this many entries per round trip when writing everything back. */
const WRITE_BACK_BATCH = 1000;

export class RedisPresence implements Presence, NodeDirectory {
  readonly nodeId: string;
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #ttlMs: number;
  readonly #onError: (err: unknown) => void;
  /** The devices this node holds, and since when: what it writes back after Redis lost it. */
  readonly #held = new Map<string, number>();
  /** Devices let go while Redis could not be told: their entries are cleared once it can. */
  readonly #letGo = new Set<string>();
  /** Other nodes' heartbeat values (undefined: dead) and when read; read again after #aliveCacheMs. */
  readonly #nodes = new Map<string, { info: NodeInfo | undefined; at: number }>();
  readonly #aliveCacheMs: number;
  #info = '{}';
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;
  #closed = false;
  /** Redis came back while a beat was on its way: write everything back once it is done. */
  #reconnected = false;
  readonly #onReady = (): void => void this.#beat(true);

  constructor(options: RedisPresenceOptions) {
    this.nodeId = options.nodeId;
    this.#redis = options.redis;
    this.#prefix = options.keyPrefix;
    this.#ttlMs = options.nodeTtlMs;
    this.#onError = options.onError ?? (() => undefined);
    // Short against the TTL: a dead node's devices read as offline at most this much after its key expired.
    this.#aliveCacheMs = Math.min(1000, Math.floor(options.nodeTtlMs / 5));
    this.#redis.on('ready', this.#onReady);
  }

  /** Writes this node's heartbeat key and starts refreshing it every third of the TTL. */
  async start(): Promise<void> {
    await redisCall(this.#redis.set(this.#nodeKey(this.nodeId), this.#info, 'PX', this.#ttlMs));
    this.#timer ??= setInterval(() => void this.#beat(false), Math.max(100, Math.floor(this.#ttlMs / 3)));
    this.#timer.unref();
  }

  /** What this node advertises to the others; written at once and with every heartbeat. */
  async setNodeInfo(info: NodeInfo): Promise<void> {
    this.#info = JSON.stringify(info);
    await redisCall(this.#redis.set(this.#nodeKey(this.nodeId), this.#info, 'PX', this.#ttlMs));
  }

  async set(deviceId: string, since: number): Promise<void> {
    this.#held.set(deviceId, since);
    await redisCall(this.#redis.set(this.#deviceKey(deviceId), `${this.nodeId} ${since}`));
  }

  async delete(deviceId: string): Promise<void> {
    this.#held.delete(deviceId);
    try {
      await DELETE_IF_OURS.run(this.#redis, [this.#deviceKey(deviceId)], [this.nodeId]);
      this.#letGo.delete(deviceId);
    } catch (err) {
      // Redis away: the entry would outlive the tunnel and read as online; cleared at the next write-back.
      if (this.#letGo.size < MAX_LET_GO) this.#letGo.add(deviceId);
      throw redisUnavailable(err);
    }
  }

  async get(deviceId: string): Promise<PresenceEntry | undefined> {
    return (await this.getMany([deviceId]))[0];
  }

  async getMany(deviceIds: readonly string[]): Promise<Array<PresenceEntry | undefined>> {
    if (deviceIds.length === 0) return [];
    const values = await redisCall(this.#redis.mget(deviceIds.map((id) => this.#deviceKey(id))));
    const entries = values.map((v) => (v === null ? undefined : parseEntry(v)));
    const alive = await this.#aliveNodes(entries);
    return entries.map((e, i) => {
      if (e === undefined || alive.has(e.nodeId)) return e;
      // A dead node's entry: void already; removing it keeps Redis to the devices that are online. Were
      // the node only cut off, it writes its entries back when it sees Redis again.
      DELETE_IF_DEAD.run(this.#redis, [this.#deviceKey(deviceIds[i]!), this.#nodeKey(e.nodeId)], [e.nodeId]).catch(() => undefined);
      return undefined;
    });
  }

  /** True while `nodeId`'s heartbeat key exists (read at most every ~second per node). */
  async nodeAlive(nodeId: string): Promise<boolean> {
    return (await this.#aliveNodes([{ nodeId, since: 0 }])).has(nodeId);
  }

  /** What a live node advertises (its internal URL); undefined when it is dead. */
  async nodeInfo(nodeId: string): Promise<NodeInfo | undefined> {
    if (nodeId === this.nodeId) return JSON.parse(this.#info) as NodeInfo;
    await this.#aliveNodes([{ nodeId, since: 0 }]);
    return this.#nodes.get(nodeId)?.info;
  }

  /** Devices this node holds. */
  get heldCount(): number {
    return this.#held.size;
  }

  /**
   * Stops the heartbeat and deletes this node's key, so its devices are offline everywhere at once (a
   * node that dies instead is found out when its key expires). The shared connection stays open.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#redis.off('ready', this.#onReady);
    await this.#beating;
    await this.#redis.del(this.#nodeKey(this.nodeId)).catch(() => undefined);
  }

  /** The node ids among `entries` whose heartbeat key exists; this node always. */
  async #aliveNodes(entries: ReadonlyArray<PresenceEntry | undefined>): Promise<Set<string>> {
    const now = Date.now();
    const alive = new Set<string>([this.nodeId]);
    const ask: string[] = [];
    for (const e of entries) {
      if (e === undefined || alive.has(e.nodeId) || ask.includes(e.nodeId)) continue;
      const known = this.#nodes.get(e.nodeId);
      if (known !== undefined && now - known.at < this.#aliveCacheMs) {
        if (known.info !== undefined) alive.add(e.nodeId);
      } else ask.push(e.nodeId);
    }
    if (ask.length > 0) {
      const beats = await redisCall(this.#redis.mget(ask.map((id) => this.#nodeKey(id))));
      // Entries of nodes not asked about for a while go, so the cache follows the live cluster.
      if (this.#nodes.size > 1000) for (const [id, n] of this.#nodes) if (now - n.at >= this.#aliveCacheMs) this.#nodes.delete(id);
      ask.forEach((id, i) => {
        const beat = beats[i];
        const info = beat === null || beat === undefined ? undefined : parseInfo(beat);
        this.#nodes.set(id, { info, at: now });
        if (info !== undefined) alive.add(id);
      });
    }
    return alive;
  }

  /**
   * Refreshes the heartbeat key (SET XX: only if it still exists). A missing key, or a reconnect
   * (`reconnected`), means Redis may have lost this node's entries: write everything back.
   */
  #beat(reconnected: boolean): Promise<void> {
    // A reconnect seen while a beat is on its way is written back right after it, not at the next beat.
    if (reconnected) this.#reconnected = true;
    if (this.#closed || this.#beating) return this.#beating ?? Promise.resolve();
    const run = async () => {
      try {
        do {
          const rewrite = this.#reconnected;
          this.#reconnected = false;
          const key = this.#nodeKey(this.nodeId);
          const kept = await this.#redis.set(key, this.#info, 'PX', this.#ttlMs, 'XX');
          if (kept === null || rewrite) await this.#writeBack();
          await this.#clearLetGo();
        } while (this.#reconnected && !this.#closed);
      } catch (err) {
        this.#onError(err);
      } finally {
        this.#beating = undefined;
      }
    };
    this.#beating = run();
    return this.#beating;
  }

  async #writeBack(): Promise<void> {
    // The heartbeat key first: from then on no other node takes the entries for a dead node's (DELETE_IF_DEAD).
    await this.#redis.set(this.#nodeKey(this.nodeId), this.#info, 'PX', this.#ttlMs);
    const held = [...this.#held];
    for (let i = 0; i < held.length; i += WRITE_BACK_BATCH) {
      const batch = this.#redis.pipeline();
      for (const [deviceId, since] of held.slice(i, i + WRITE_BACK_BATCH)) batch.set(this.#deviceKey(deviceId), `${this.nodeId} ${since}`, 'NX');
      const results = await batch.exec();
      const failed = results?.find(([err]) => err !== null);
      if (failed) throw failed[0];
      // A device let go while its batch was on its way must not stay behind as online.
      for (const [deviceId] of held.slice(i, i + WRITE_BACK_BATCH)) {
        if (!this.#held.has(deviceId)) await DELETE_IF_OURS.run(this.#redis, [this.#deviceKey(deviceId)], [this.nodeId]);
      }
    }
  }

  async #clearLetGo(): Promise<void> {
    for (const deviceId of [...this.#letGo]) {
      if (!this.#held.has(deviceId)) await DELETE_IF_OURS.run(this.#redis, [this.#deviceKey(deviceId)], [this.nodeId]);
      this.#letGo.delete(deviceId);
    }
  }

  #nodeKey(nodeId: string): string {
    return `${this.#prefix}node:${nodeId}`;
  }

  #deviceKey(deviceId: string): string {
    return `${this.#prefix}device:${deviceId}`;
  }
}

function parseEntry(value: string): PresenceEntry | undefined {
  const space = value.indexOf(' ');
  if (space <= 0) return undefined;
  const since = Number(value.slice(space + 1));
  return Number.isFinite(since) ? { nodeId: value.slice(0, space), since } : undefined;
}

function parseInfo(value: string): NodeInfo {
  try {
    const info = JSON.parse(value) as unknown;
    return typeof info === 'object' && info !== null ? (info as NodeInfo) : {};
  } catch {
    return {};
  }
}
