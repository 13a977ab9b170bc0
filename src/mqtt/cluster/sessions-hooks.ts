/**
 * What the session registry tells the cluster's session layer (src/mqtt/cluster/sessions.ts) and asks
 * of it. Only a broker running with `--redis` and `--store postgres://` has one; without it the
 * registry makes none of these calls (the embedded path pays nothing for the cluster).
 */
import type { Will } from '../channel.js';

export interface SessionCluster {
  /**
   * Before a session for `clientId` is opened on this node: the node holding it (connected or not)
   * hands it over, its state written to the database, and this node is recorded as its holder.
   * A session of another principal is not handed over: 'refused', and nothing changes (the CONNECT
   * is refused, as on one node). Bounded: resolves when the holder answered, or after a timeout when
   * it is dead or silent.
   */
  claim(clientId: string, principal: string, cleanStart: boolean): Promise<'claimed' | 'refused'>;
  /** The session is this node's and connected, with the connection's will (undefined: none). */
  opened(clientId: string, principal: string, will: Will | undefined, sessionExpiryS: number): void;
  /** The connection ended; `willDueAt` when its will waits for its delay (ms since epoch). */
  closed(clientId: string, willDueAt: number | undefined): void;
  /** The pending will was published or dropped. */
  willDone(clientId: string): void;
  /** The session ended on this node, or left it (handed over): it is no longer this node's. */
  ended(clientId: string): void;
}
