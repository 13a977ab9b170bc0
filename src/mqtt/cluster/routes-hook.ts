/**
 * What the broker core asks of the cluster (docs/mqtt.md "Cluster"): the only seam between the
 * embedded broker and the routes and forwards between nodes. Unset (no `--redis`), the core never
 * reaches this code: a single node pays one `undefined` check per message.
 */
import type { Message } from '../message.js';
import type { Delivery } from '../router.js';

export interface ForwardOutcome {
  /** The local deliveries left after the shared groups picked on other nodes were taken out. */
  readonly local: Delivery[];
  /** Nodes the message was sent to. */
  readonly nodes: number;
  /**
   * Resolves true once every node sent to confirmed it stored the message (QoS 1/2), or Redis took it
   * (QoS 0); false when one did not, or not within the confirmation timeout.
   */
  readonly sent: Promise<boolean> | undefined;
}

export interface ClusterRouting {
  /**
   * Why this node cannot route now (Redis away: its route table may be stale and forwards cannot be
   * sent), counted and logged rate-limited; undefined when it can. Publishes are refused meanwhile.
   */
  unavailable(): string | undefined;
  /** Sends `m` once to each other node with a matching route; `local` are this node's deliveries. */
  forward(m: Message, local: Delivery[]): ForwardOutcome;
  /**
   * Sends `m` to one other node holding members of the shared group `group`, for that group only (a
   * member here left it unacknowledged, 5.0 §4.8.2); undefined when no other node holds the group, else
   * resolves true once Redis accepted it.
   */
  redirect(m: Message, group: string): Promise<boolean> | undefined;
  /** Sends a retained message (or its clearing) to every other node, which keeps it in memory (not called when they are shared in PostgreSQL). */
  retained(m: Message, owner: string, bytes: number): void;
  /** A route key (a filter, `$share/group/` included) gained (+1) or lost (-1) one local subscription. */
  routeChanged(key: string, delta: 1 | -1): void;
}
