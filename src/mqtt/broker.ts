/**
 * The MQTT 3.1.1 / 5.0 broker, as a library: fed duplex streams (TCP, TLS, WebSocket, in-memory), it
 * never owns a server. The hub wires listeners, credentials, ACLs, $SYS and metrics around it.
 *
 *   const broker = new Broker({ allowAnonymous: true }, {});
 *   net.createServer((socket) => broker.handle(socket, { remoteAddress: socket.remoteAddress ?? '', transport: 'tcp' }));
 */
import type { Duplex } from 'node:stream';
import type { QoS } from 'mqtt-packet';
import { validateTopicFilter, validateTopicName } from '../core/topic-tree.js';
import type { ConnectionMeta } from './channel.js';
import { Connection, type ConnectionOwner } from './connection.js';
import type { ClusterRouting } from './cluster/routes-hook.js';
import { BrokerCore } from './core.js';
import type { BrokerHooks } from './hooks.js';
import { isExpired, type Message, type MessageProperties } from './message.js';
import type { BrokerOptions, ResolvedOptions } from './options.js';
import { RC } from './reason-codes.js';
import type { StatsSnapshot } from './stats.js';
import type { SessionCluster } from './cluster/sessions-hooks.js';
import type { Will } from './channel.js';

const SYS_PREFIX = '$SYS/';

/** What the cluster's session layer may do with this broker's sessions (Broker.useSessionCluster). */
export interface SessionHost {
  /** Another node takes the session: see SessionRegistry.handOver (true: refused, another principal's). */
  handOver(clientId: string, principal: string, cleanStart: boolean): Promise<boolean>;
  /** A dead node's stored session comes here: see SessionRegistry.adopt. */
  adopt(clientId: string, disconnectedAt: number, will?: { message: Will['message']; principal: string; dueAt: number }): Promise<'adopted' | 'present' | 'none'>;
  publishWill(clientId: string, message: Will['message'], principal: string): void;
  sweepExpired(): Promise<void>;
  /** The client ids of the sessions in this node's memory. */
  sessionIds(): string[];
  /** This node lost Redis: see SessionRegistry.fenceAll. */
  fenceAll(reasonCode: number, reasonString: string): void;
  now(): number;
}

/** A message the hub publishes itself (REST bridge, device status, $SYS). */
export interface ServerMessage {
  topic: string;
  payload: Buffer | string;
  /** Default 0. */
  qos?: QoS;
  /** Default false. */
  retain?: boolean;
  /** MQTT 5 properties passed to v5 subscribers. */
  properties?: MessageProperties;
  /** Message Expiry Interval, in seconds. */
  messageExpiryIntervalS?: number;
  /**
   * The principal a retained message is charged to, under the retained quotas (a user publishing over
   * HTTP). Unset: the hub's own message, never refused.
   */
  owner?: string;
  /**
   * Cluster: to this node's subscribers only, not forwarded (an event every node receives from the
   * Bus and publishes itself, so each subscriber gets it once). No effect on a single node.
   */
  local?: boolean;
}

/** Cluster: the message cannot be routed to the other nodes (Redis unreachable). Nothing was published, or not everywhere. */
export class ClusterUnavailableError extends Error {
  override readonly name = 'ClusterUnavailableError';
}

/** A retained server publish with an `owner` refused: it would pass one of the retained quotas. Nothing was published. */
export class RetainedQuotaError extends Error {
  override readonly name = 'RetainedQuotaError';
}

export class Broker {
  readonly #core: BrokerCore;
  readonly #connections = new Set<Connection>();
  #reauthorizing = false;
  readonly #owner: ConnectionOwner = { connectionClosed: (c) => void this.#connections.delete(c) };

  constructor(options: BrokerOptions = {}, hooks: BrokerHooks = {}) {
    this.#core = new BrokerCore(options, hooks);
  }

  /** Resolves when state kept in persistence (retained messages) is loaded; connections wait for it anyway. */
  get ready(): Promise<void> {
    return this.#core.ready;
  }

  /** True once close() was called: new connections are refused. */
  get closing(): boolean {
    return this.#core.closing;
  }

  get options(): ResolvedOptions {
    return this.#core.options;
  }

  /** Serves one client connection on `stream` until either side closes it. */
  handle(stream: Duplex, meta: ConnectionMeta): void {
    if (this.#core.closing) {
      stream.destroy();
      return;
    }
    this.#connections.add(new Connection(this.#core, stream, meta, this.#owner));
  }

  /**
   * Publishes as the server: to every matching subscription, and stored if retained. Resolves once
   * persistent copies are stored (cluster: and, at QoS 1/2, the other nodes confirmed theirs). Throws TypeError on an
   * invalid topic name, RetainedQuotaError when `owner` is set and the retained quotas refuse the
   * message, ClusterUnavailableError (thrown, or the rejection) when it cannot be routed to other nodes. Not subject to the ACL hooks.
   */
  publish(msg: ServerMessage): Promise<void> {
    const problem = validateTopicName(msg.topic);
    if (problem !== null) throw new TypeError(`invalid topic ${JSON.stringify(msg.topic)}: ${problem}`);
    const core = this.#core;
    const payload = typeof msg.payload === 'string' ? Buffer.from(msg.payload) : msg.payload;
    const qos = msg.qos ?? 0;
    const m: Message = {
      topic: msg.topic,
      payload,
      qos,
      retain: msg.retain === true,
      properties: msg.properties,
      expiresAt: msg.messageExpiryIntervalS === undefined ? undefined : core.now() + msg.messageExpiryIntervalS * 1000,
      senderId: undefined,
    };
    if (msg.owner !== undefined && !core.admitRetained(m, msg.owner)) throw new RetainedQuotaError('retained message quota exceeded');
    if (core.routing !== undefined && msg.local !== true && !msg.topic.startsWith(SYS_PREFIX)) {
      const why = core.routing.unavailable();
      if (why !== undefined) throw new ClusterUnavailableError(why);
    }
    // The broker's own statistics are not traffic: counting them would change them at every round.
    if (!msg.topic.startsWith(SYS_PREFIX)) {
      core.stats.messagesIn[qos]++;
      core.stats.bytesIn[qos] += payload.length;
    }
    const { stored, sent, retained } = core.route(m, msg.owner, msg.local === true);
    // Shared retained messages: a quota refusal is known once written (delivered, not retained).
    const kept = msg.owner === undefined || retained === undefined ? stored : Promise.all([stored, retained]).then(([, ok]) => {
      if (!ok) throw new RetainedQuotaError('retained message quota exceeded');
    });
    if (sent === undefined) return kept ?? Promise.resolve();
    return Promise.all([kept, sent]).then(([, ok]) => {
      if (!ok) throw new ClusterUnavailableError('the message could not be forwarded to the other nodes (Redis unavailable)');
    });
  }

  /**
   * Joins a cluster: `cluster` is told of every route this node gains or loses (client subscriptions
   * and subscribeLocal filters) and asked to forward each message. Call once, before any client
   * connects or subscribeLocal is called.
   */
  attachCluster(cluster: ClusterRouting): void {
    const core = this.#core;
    core.routing = cluster;
    core.router.onRoute = (key, delta) => cluster.routeChanged(key, delta);
  }

  /**
   * A message another node forwarded: delivered here as a local publish would be, not forwarded again
   * (see BrokerCore.routeForwarded). Resolves once its persistent copies are stored (undefined: none).
   */
  deliverForwarded(m: Message, groups: ReadonlySet<string> | undefined, groupsOnly = false): Promise<unknown> | undefined {
    const core = this.#core;
    core.stats.messagesIn[m.qos]++;
    core.stats.bytesIn[m.qos] += m.payload.length;
    return core.routeForwarded(m, groups, groupsOnly);
  }

  /** A retained message set or cleared on another node (already stored there). */
  retainForwarded(m: Message, owner: string, bytes: number): void {
    this.#core.retainForwarded(m, owner, bytes);
  }

  /**
   * Calls `onMessage` in-process for every message routed to a topic matching `filter` (client PUBLISHes
   * and server publishes alike), after any matching retained messages when `retained` is set. Not subject
   * to the ACL hooks: the caller checks. `onMessage` must not block; it may unsubscribe. Throws TypeError
   * on an invalid filter or a shared subscription.
   */
  subscribeLocal(filter: string, onMessage: (m: Message) => void, o: { retained?: boolean } = {}): () => void {
    const problem = filter.startsWith('$share/') ? 'shared subscriptions are for clients' : validateTopicFilter(filter);
    if (problem !== null) throw new TypeError(`invalid filter ${JSON.stringify(filter)}: ${problem}`);
    const core = this.#core;
    let active = true;
    const fn = (m: Message): void => {
      if (active) onMessage(m);
    };
    core.local.add(filter, fn);
    // Cluster: the other nodes forward what matches, as for a client's subscription.
    core.router.onRoute?.(filter, 1);
    if (o.retained === true && core.shared !== undefined) void this.#sharedRetained(filter, () => active, onMessage);
    if (o.retained === true) {
      const now = core.now();
      for (const e of core.retained.match(filter, now)) {
        if (e.message !== undefined) {
          if (active && !isExpired(e.message, now)) onMessage(e.message);
          continue;
        }
        // Kept in persistence only: delivered once read, unless replaced or unsubscribed meanwhile.
        void core.loadRetained(e).then((m) => {
          if (m !== undefined && active && core.retained.get(e.topic) === e) onMessage(m);
        });
      }
    }
    return () => {
      if (!active) return;
      active = false;
      core.local.remove(filter, fn);
      core.router.onRoute?.(filter, -1);
    };
  }

  /**
   * The authorization hooks may answer otherwise from now on (a device changed owner, the rules
   * changed): each subscription is asked about again (authorizeSubscribe) and the per-message answers
   * are forgotten. Calls in one synchronous run are done once, in a microtask: before any further packet
   * from a client is handled.
   */
  authorizationChanged(): void {
    if (this.#reauthorizing) return;
    this.#reauthorizing = true;
    queueMicrotask(() => {
      this.#reauthorizing = false;
      this.#core.registry.reauthorize();
    });
  }

  /**
   * Disconnects the clients authenticated as `principal` (5.0: DISCONNECT with `reasonCode`), without
   * publishing their wills; returns how many. For an operator's action, such as a revoked device.
   */
  disconnectPrincipal(principal: string, reasonCode: number, reasonString: string): number {
    let n = 0;
    for (const c of this.#connections) {
      if (c.channel.principal !== principal || c.channel.closed) continue;
      c.channel.disconnect(reasonCode, reasonString, false);
      n++;
    }
    return n;
  }

  /**
   * Disconnects the clients that authenticated with `credential` (the authenticate hook's `credential`,
   * e.g. a revoked token's hash): 5.0 DISCONNECT with `reasonCode` once connected, a plain close before
   * CONNACK ([MQTT-3.2.0-1]: CONNACK is the server's first packet). Wills are not published. Returns how many.
   */
  disconnectCredential(credential: string, reasonCode: number, reasonString: string): number {
    const channels = this.#core.channelsWithCredential(credential);
    for (const ch of channels) {
      if (ch.state === 'connected') ch.disconnect(reasonCode, reasonString, false);
      else ch.close(false);
    }
    return channels.length;
  }

  /**
   * Joins the cluster's session layer (src/mqtt/cluster/sessions.ts), before any client connects; the
   * returned handle is what that layer calls back.
   */
  useSessionCluster(cluster: SessionCluster): SessionHost {
    const core = this.#core;
    core.cluster = cluster;
    const registry = core.registry;
    return {
      handOver: (clientId, principal, cleanStart) => registry.handOver(clientId, principal, cleanStart),
      adopt: (clientId, disconnectedAt, will) => registry.adopt(clientId, disconnectedAt, will),
      publishWill: (clientId, message, principal) => registry.publishWill(clientId, message, principal),
      sweepExpired: () => core.sweepExpired(),
      sessionIds: () => [...registry.sessions.keys()],
      fenceAll: (reasonCode, reasonString) => registry.fenceAll(reasonCode, reasonString),
      now: () => core.now(),
    };
  }

  /**
   * Disconnects every client (5.0: DISCONNECT 0x8B), without publishing wills, and waits for the
   * persistence writes in flight. Persistent sessions stay in the store.
   */
  async close(): Promise<void> {
    const core = this.#core;
    core.closing = true;
    for (const c of this.#connections) c.channel.disconnect(RC.SERVER_SHUTTING_DOWN, 'server shutting down', false);
    await core.stop();
  }

  /** Open connections that completed CONNECT. */
  get connections(): number {
    return this.#core.stats.connections;
  }

  /** Sessions in memory, connected or not. */
  get sessions(): number {
    return this.#core.registry.sessions.size;
  }

  get subscriptions(): number {
    return this.#core.router.size;
  }

  /** Retained messages hub-wide (shared: as of this node's last write or sweep, plus its own `$SYS/` ones). */
  get retainedCount(): number {
    return this.#core.retained.size + (this.#core.shared?.count ?? 0);
  }

  /** Bytes charged for the retained messages (topics, payloads, properties), in memory or not. */
  get retainedBytes(): number {
    return this.#core.retained.usage.bytes + (this.#core.shared?.bytes ?? 0);
  }

  /** Retained messages kept in this process's memory: 0 where they live in the shared database (but the broker's `$SYS/` ones). */
  get retainedInMemory(): number {
    return this.#core.shared === undefined ? this.#core.retained.size : 0;
  }

  /** The retained messages matching `filter` now, wherever they live (read a page at a time when shared). */
  async *retainedMatching(filter: string): AsyncIterable<Message> {
    const core = this.#core;
    const now = core.now();
    for (const e of core.retained.match(filter, now)) {
      const m = await core.loadRetained(e);
      if (m !== undefined) yield m;
    }
    if (core.shared !== undefined) yield* core.shared.matching(filter, now);
  }

  /** subscribeLocal's retained messages from the shared database, while `active()`; failures go to onError. */
  async #sharedRetained(filter: string, active: () => boolean, onMessage: (m: Message) => void): Promise<void> {
    try {
      for await (const m of this.#core.shared!.matching(filter, this.#core.now())) {
        if (!active()) return;
        onMessage(m);
      }
    } catch (err) {
      this.#core.hooks.onError(err, 'persistence: read retained messages');
    }
  }

  /** QoS 1/2 messages sent to clients and not yet acknowledged. */
  get inflight(): number {
    return this.#core.stats.inflight;
  }

  /** Messages waiting in session queues. */
  get queued(): number {
    return this.#core.stats.queued;
  }

  /** Every counter and gauge at once (messages and bytes in/out per QoS, dropped, expired...). */
  get stats(): StatsSnapshot {
    return this.#core.stats.snapshot();
  }
}
