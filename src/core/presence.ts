/**
 * Which node holds a device's tunnel: what every online check reads (device lists' `online`, the SSE
 * status snapshot, the relay's offline answer when a queued request could not start). Embedded: a Map;
 * scaled: Redis keys, each device entry owned by its node and void once the node's TTL heartbeat key
 * expires (docs/scale-out.md), so the interface is asynchronous.
 */
export interface PresenceEntry {
  /** The node holding the device's tunnel. */
  readonly nodeId: string;
  /** When that tunnel was established (ms since the epoch). */
  readonly since: number;
}

export interface Presence {
  /** This node's id: what `set` records. */
  readonly nodeId: string;
  /** This node holds the device's tunnel from now on (a take-over from any node included). */
  set(deviceId: string, since: number): Promise<void>;
  /** This node no longer holds the device; an entry another node set meanwhile (a take-over) stays. */
  delete(deviceId: string): Promise<void>;
  /** Where the device is, or undefined when it is offline everywhere. */
  get(deviceId: string): Promise<PresenceEntry | undefined>;
  /** `get` for many devices at once (one round trip when scaled), in the order given. */
  getMany(deviceIds: readonly string[]): Promise<Array<PresenceEntry | undefined>>;
}

/**
 * Presence in a Map. Nodes in one process may share the Map (`table`), as nodes share Redis; the
 * embedded hub has one node and its own Map. Every method has updated or read the Map by the time it
 * returns, so a check right after a `set` (not awaited) already sees it.
 */
export class MapPresence implements Presence {
  readonly #where: Map<string, PresenceEntry>;

  constructor(
    readonly nodeId: string,
    table: Map<string, PresenceEntry> = new Map(),
  ) {
    this.#where = table;
  }

  async set(deviceId: string, since: number): Promise<void> {
    this.#where.set(deviceId, { nodeId: this.nodeId, since });
  }

  async delete(deviceId: string): Promise<void> {
    if (this.#where.get(deviceId)?.nodeId === this.nodeId) this.#where.delete(deviceId);
  }

  async get(deviceId: string): Promise<PresenceEntry | undefined> {
    return this.#where.get(deviceId);
  }

  async getMany(deviceIds: readonly string[]): Promise<Array<PresenceEntry | undefined>> {
    return deviceIds.map((id) => this.#where.get(id));
  }
}

/** What a node advertises to the others in its heartbeat (scaled out): how to reach it. */
export interface NodeInfo {
  /** The node's internal URL (`--internal-url`), for node-to-node links. */
  readonly internalUrl?: string;
}

/** The cluster's live nodes, as presence's heartbeats know them (RedisPresence); none when embedded. */
export interface NodeDirectory {
  /** True while the node's heartbeat is fresh. */
  nodeAlive(nodeId: string): Promise<boolean>;
  /** What a live node advertises; undefined when it is dead. */
  nodeInfo(nodeId: string): Promise<NodeInfo | undefined>;
  /** What this node advertises from now on (written at once and with every heartbeat). */
  setNodeInfo(info: NodeInfo): Promise<void>;
}
