/**
 * How nodes find each other: each edge (and `all` node with --redis) announces its internal URL
 * (--internal-url); a front looks up the URL of the node Presence names for a device. Scaled: node
 * info beside the node's heartbeat key in Redis, gone when the node is; embedded and in tests: a Map.
 */
export interface NodeDirectory {
  /** Records how other nodes reach this node. */
  announce(nodeId: string, internalUrl: string): Promise<void>;
  /** The internal URL of a live node, or undefined when it is unknown or dead. */
  internalUrl(nodeId: string): Promise<string | undefined>;
}

/** NodeDirectory in a Map: nodes in one process may share it, as nodes share Redis. */
export class MapNodeDirectory implements NodeDirectory {
  constructor(private readonly urls: Map<string, string> = new Map()) {}

  async announce(nodeId: string, internalUrl: string): Promise<void> {
    this.urls.set(nodeId, internalUrl);
  }

  async internalUrl(nodeId: string): Promise<string | undefined> {
    return this.urls.get(nodeId);
  }
}
