/**
 * What the broker's parts share: the channel, the handlers and the sessions reach the broker only
 * through this interface, so they do not depend on the Broker class itself.
 */
import type { Channel } from './channel.js';
import type { ClusterRouting } from './cluster/routes-hook.js';
import type { Deadlines } from './deadlines.js';
import type { ResolvedHooks } from './hooks.js';
import type { Message } from './message.js';
import type { ResolvedOptions } from './options.js';
import type { OwnerQuotas } from './owner-quotas.js';
import type { MqttPersistence } from './persistence.js';
import type { RetainedEntry, RetainedStore } from './retained.js';
import type { RetainedSource } from './retained-source.js';
import type { TopicLimits } from '../core/topic-limits.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import type { BrokerStats } from './stats.js';
import type { SessionCluster } from './cluster/sessions-hooks.js';

export interface PublishOutcome {
  /** Sessions the message was given to. */
  readonly deliveries: number;
  /** Resolves once every persistent copy (queued messages, the retained message) is stored. */
  readonly stored: Promise<void> | undefined;
  /** Cluster: resolves true once the other nodes confirmed the forwards (QoS 0: Redis took them), false if one did not. */
  readonly sent?: Promise<boolean> | undefined;
  /** Shared retained messages (PostgreSQL): resolves false when a quota refused to retain it (it was delivered, not retained). */
  readonly retained?: Promise<boolean> | undefined;
}

export interface OpenRequest {
  clientId: string;
  principal: string;
  protocolVersion: 3 | 4 | 5;
  cleanStart: boolean;
  /** Granted Session Expiry Interval, in seconds. */
  expiryIntervalS: number;
}

export type OpenOutcome = 'opened' | 'refused' | 'quota' | 'closed' | 'unavailable';

export interface BrokerContext {
  readonly options: ResolvedOptions;
  readonly hooks: ResolvedHooks;
  readonly stats: BrokerStats;
  readonly router: Router;
  /** The routes and forwards to other nodes; undefined on a single node. */
  readonly routing: ClusterRouting | undefined;
  readonly retained: RetainedStore;
  /** Retained messages every node reads from the database (PostgreSQL); undefined when they are all in `retained`. */
  readonly shared: RetainedSource | undefined;
  /** Sessions and queued bytes per owner (maxSessionsPerOwner, maxQueuedBytesPerOwner). */
  readonly quotas: OwnerQuotas;
  readonly persistence: MqttPersistence | undefined;
  /** Connection timers (CONNECT timeout, keep alive), one heap for all. */
  readonly deadlines: Deadlines;
  now(): number;
  /** Follows a persistence write: failures go to hooks.onError (resolving undefined); close() waits for it. */
  track<T>(p: Promise<T>, context: string): Promise<T | undefined>;
  /** Most levels and bytes of a topic name or filter. */
  readonly topicLimits: TopicLimits;
  /**
   * Routes a message to its subscribers and, if it is retained, stores it ([MQTT-3.3.1-5]), charged to
   * `owner` (the publishing principal; default '' for the server). Check admitRetained() first.
   */
  route(m: Message, owner?: string): PublishOutcome;
  /** False (counted and logged, rate-limited) when retaining `m` would pass one of `owner`'s or the hub's retained quotas. */
  admitRetained(m: Message, owner: string): boolean;
  /** The message of a retained entry, read from persistence when only persistence holds it; undefined if gone or expired. */
  loadRetained(entry: RetainedEntry): Promise<Message | undefined>;
  /**
   * Takes over or creates the session for a CONNECT that passed authentication. `onOpen` runs at the
   * moment the session is the channel's, before any message can reach it (so CONNACK goes first).
   * 'refused': the client id is another principal's session; 'quota': the principal has its
   * maxSessionsPerOwner sessions already; 'closed': the channel closed meanwhile; 'unavailable': the
   * cluster could not tell which node holds the session (Redis away).
   */
  openSession(ch: Channel, req: OpenRequest, onOpen: (session: Session, present: boolean) => void): Promise<OpenOutcome>;
  /** Records the credential a channel authenticated with (ch.credential), until forgetCredential at its close. */
  holdCredential(ch: Channel, credential: string): void;
  forgetCredential(ch: Channel): void;
  /** The channel's transport closed; `sendWill` unless it ended with a normal DISCONNECT. */
  channelClosed(ch: Channel, sendWill: boolean): void;
  /** Saves a persistent session's subscriptions and expiry. */
  saveSession(session: Session): Promise<void> | undefined;
  /** The cluster's session layer (--redis with --store postgres://); undefined on one node. */
  readonly cluster: SessionCluster | undefined;
  /** Resolves once the persistence writes issued so far are done (failed ones reported). */
  flushWrites(): Promise<void>;
  readonly connectedCount: number;
  readonly closing: boolean;
  readonly ready: Promise<void>;
}
