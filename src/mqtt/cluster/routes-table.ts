/**
 * The other nodes' routes, as this node knows them (in the spirit of EMQX's emqx_router): a topic tree of
 * filters → node ids, kept current by route deltas and full reads (routes-redis.ts), so finding where a
 * PUBLISH goes takes no round trip. A shared subscription's route names its group: each message goes to
 * one node per group, round-robin among the nodes holding members (this one included), and that node
 * picks the member.
 */
import { TopicTree } from '../../core/topic-tree.js';
import { parseFilter } from '../subscription.js';

interface RemoteRoute {
  readonly nodeId: string;
  /** `$share/group/filter` for a shared group's route; undefined for an ordinary filter. */
  readonly group: string | undefined;
}

/** Where one message goes. */
export interface ForwardPlan {
  /** Each node that gets the message, with the shared groups it was picked for. */
  readonly nodes: Map<string, string[]>;
  /** Shared groups this node holds members of that another node was picked for: not delivered here. */
  readonly notHere: Set<string> | undefined;
}

/** Round-robin positions kept per group, at most this many (then forgotten, which only restarts the turn). */
const MAX_TURNS = 100_000;

export class RouteTable {
  readonly #tree = new TopicTree<RemoteRoute>();
  readonly #byNode = new Map<string, Map<string, RemoteRoute>>();
  readonly #turns = new Map<string, number>();
  /** Dead nodes whose routes are held (dropDead), and since when. */
  readonly #deadSince = new Map<string, number>();
  // The pass in progress, for #collect (one function for every message).
  #nodes = new Map<string, string[]>();
  #groups: Map<string, string[]> | undefined;
  readonly #collect = (r: RemoteRoute): void => {
    if (r.group === undefined) {
      if (!this.#nodes.has(r.nodeId)) this.#nodes.set(r.nodeId, []);
      return;
    }
    const groups = (this.#groups ??= new Map());
    const list = groups.get(r.group);
    if (list === undefined) groups.set(r.group, [r.nodeId]);
    else list.push(r.nodeId);
  };

  /** Routes known on other nodes. */
  get size(): number {
    return this.#tree.size;
  }

  /** The nodes with at least one route. */
  nodeIds(): string[] {
    return [...this.#byNode.keys()];
  }

  add(nodeId: string, key: string): void {
    let routes = this.#byNode.get(nodeId);
    if (routes === undefined) this.#byNode.set(nodeId, (routes = new Map()));
    if (routes.has(key)) return;
    const parsed = parseFilter(key);
    // A key no client could have subscribed with (another version's, a corrupted one): ignored.
    if ('problem' in parsed) return;
    const route: RemoteRoute = { nodeId, group: parsed.group === undefined ? undefined : key };
    routes.set(key, route);
    this.#tree.add(parsed.topicFilter, route);
  }

  remove(nodeId: string, key: string): void {
    const routes = this.#byNode.get(nodeId);
    const route = routes?.get(key);
    if (route === undefined) return;
    routes!.delete(key);
    if (routes!.size === 0) this.#byNode.delete(nodeId);
    const parsed = parseFilter(key);
    if (!('problem' in parsed)) this.#tree.remove(parsed.topicFilter, route);
  }

  /** A full read of one node's routes: replaces what was known of it. */
  replace(nodeId: string, keys: Iterable<string>): void {
    const want = new Set(keys);
    for (const key of [...(this.#byNode.get(nodeId)?.keys() ?? [])]) if (!want.has(key)) this.remove(nodeId, key);
    for (const key of want) this.add(nodeId, key);
  }

  /** A node that died or left: its routes are void. */
  dropNode(nodeId: string): void {
    this.#deadSince.delete(nodeId);
    for (const key of [...(this.#byNode.get(nodeId)?.keys() ?? [])]) this.remove(nodeId, key);
  }

  /**
   * Drops the routes of the nodes not in `live`; with `holdMs`, only once they have been seen dead for
   * that long: meanwhile the messages for them are still forwarded, and fail, so that their publishers
   * hear of it rather than be told nobody subscribed (a survivor drops them as it takes the dead node's
   * sessions over, see ClusterRoutes.nodeTakenOver).
   */
  dropDead(live: ReadonlySet<string>, holdMs: number, now: number): void {
    for (const id of this.#deadSince.keys()) if (live.has(id)) this.#deadSince.delete(id);
    for (const id of this.nodeIds()) {
      if (live.has(id)) continue;
      const since = this.#deadSince.get(id) ?? now;
      if (now - since >= holdMs) this.dropNode(id);
      else this.#deadSince.set(id, since);
    }
  }

  /**
   * The nodes `topic` goes to. `localGroups` are the shared groups (`$share/group/filter`) this node
   * picked a member of: each takes its turn with the other nodes holding that group.
   */
  plan(topic: string, localGroups: readonly string[] | undefined): ForwardPlan {
    const nodes = new Map<string, string[]>();
    this.#nodes = nodes;
    this.#groups = undefined;
    this.#tree.forEach(topic, this.#collect);
    const groups = this.#groups as Map<string, string[]> | undefined;
    let notHere: Set<string> | undefined;
    if (groups !== undefined) {
      for (const [group, holders] of groups) {
        const here = localGroups?.includes(group) === true;
        const n = holders.length + (here ? 1 : 0);
        const turn = this.#turn(group, n);
        // Turn 0..holders-1: another node; the last turn: this one.
        if (turn === holders.length) continue;
        if (here) (notHere ??= new Set()).add(group);
        const nodeId = holders[turn]!;
        const list = nodes.get(nodeId);
        if (list === undefined) nodes.set(nodeId, [group]);
        else list.push(group);
      }
    }
    return { nodes, notHere };
  }

  /** One node holding members of `group` (`$share/group/filter`), in turn; undefined when no other node does. */
  nodeForGroup(group: string): string | undefined {
    const holders: string[] = [];
    for (const [nodeId, routes] of this.#byNode) if (routes.has(group)) holders.push(nodeId);
    return holders.length === 0 ? undefined : holders[this.#turn(group, holders.length)];
  }

  #turn(group: string, n: number): number {
    const next = this.#turns.get(group) ?? 0;
    if (this.#turns.size >= MAX_TURNS && !this.#turns.has(group)) this.#turns.clear();
    this.#turns.set(group, next + 1);
    return next % n;
  }
}
