/**
 * What the MQTT broker keeps across restarts (MQTT 5 §4.1 "Session State"): persistent sessions with
 * their subscriptions, QoS 1/2 messages queued or in flight for them, the packet ids of QoS 2 messages
 * received but not yet released, and retained messages. The embedded implementation is SQLite; the
 * scaled one PostgreSQL. Every implementation passes test/mqtt-persistence-contract.ts.
 *
 * Rule: a message is persisted here before it is acknowledged to its publisher (PUBACK / PUBREC), so an
 * acknowledged message is never lost.
 */
export interface StoredSubscription {
  filter: string;
  /** Maximum QoS granted. */
  qos: 0 | 1 | 2;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  /** MQTT 5 subscription identifier, if any. */
  subscriptionId?: number;
}

export interface StoredSession {
  clientId: string;
  /** The principal the session belongs to (device id or user id), so another principal cannot resume it. */
  owner: string;
  protocolVersion: 3 | 4 | 5;
  /** Seconds the session outlives its connection; 0xFFFFFFFF = never expires. */
  expiryIntervalS: number;
  /** When the connection ended (ms since epoch); null while connected. */
  disconnectedAt: number | null;
  subscriptions: StoredSubscription[];
}

export interface StoredMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  /** MQTT 5 PUBLISH properties kept for delivery (payload format, content type, response topic, correlation data, user properties). */
  properties?: Record<string, unknown>;
  /** Absolute expiry (ms since epoch) from the message expiry interval; undefined = never. */
  expiresAt?: number;
}

/** A message queued for, or in flight to, one client session. */
export interface QueuedMessage extends StoredMessage {
  /** Order within the session's queue. */
  seq: number;
  /** Packet id once sent (in flight); undefined while only queued. */
  packetId?: number;
  /** For QoS 2 in flight: PUBREC received, PUBREL sent, waiting for PUBCOMP. */
  released?: boolean;
  /** Subscription identifiers that matched (MQTT 5). */
  subscriptionIds?: number[];
  /** The shared subscription it was picked for, as subscribed (`$share/{group}/{filter}`). */
  shareGroup?: string;
}

/** What enqueue stores of a message: the message, and how it matched. */
export type EnqueuedMessage = StoredMessage & Pick<QueuedMessage, 'subscriptionIds' | 'shareGroup'>;

/** A retained message as the broker indexes it at start; payload and properties only for small ones. */
export interface RetainedRecord {
  topic: string;
  qos: 0 | 1 | 2;
  expiresAt?: number;
  /** Who it is charged to ('' for the server's own, and for rows stored before owners were). */
  owner: string;
  /** What it is charged (topic, payload, properties), as given to setRetained or estimated for older rows. */
  bytes: number;
  /** Present when bytes <= the inlineMaxBytes asked for. */
  payload?: Buffer;
  properties?: Record<string, unknown>;
}

export interface MqttPersistence {
  getSession(clientId: string): Promise<StoredSession | undefined>;
  saveSession(session: StoredSession): Promise<void>;
  deleteSession(clientId: string): Promise<void>;
  /** The client id and owner of every stored session (read once at start: they count towards maxSessionsPerOwner). */
  sessionOwners(): Promise<Array<{ clientId: string; owner: string }>>;
  /** Sessions whose expiry has passed at `now`; the broker deletes them. */
  expiredSessions(now: number): Promise<string[]>;

  /**
   * Appends messages, each with the subscription identifiers it matched, to a session's queue in one
   * transaction; returns their seqs, which increase and are not reused. Bounded by the broker, not here.
   */
  enqueue(clientId: string, messages: EnqueuedMessage[]): Promise<number[]>;
  /** The session's queue in order (in-flight first), up to `limit`. */
  queued(clientId: string, limit: number): Promise<QueuedMessage[]>;
  /** Marks a queued message as sent with `packetId` (or as released for QoS 2). */
  updateQueued(clientId: string, seq: number, change: { packetId?: number; released?: boolean }): Promise<void>;
  /** Removes a message acknowledged by the client (PUBACK / PUBCOMP) or dropped. */
  removeQueued(clientId: string, seq: number): Promise<void>;
  countQueued(clientId: string): Promise<number>;

  /** QoS 2 received from a client: packet ids with PUBREC sent and PUBREL not yet received ([MQTT-4.3.3]). */
  addIncomingQos2(clientId: string, packetId: number): Promise<void>;
  removeIncomingQos2(clientId: string, packetId: number): Promise<void>;
  incomingQos2(clientId: string): Promise<number[]>;

  /**
   * Stores or, with an empty payload, clears the retained message of a topic ([MQTT-3.3.1-6/7]), with
   * who it is charged to and how much (default: '' and 0).
   */
  setRetained(message: StoredMessage, charge?: { owner: string; bytes: number }): Promise<void>;
  /** All retained messages with their payloads. */
  allRetained(): Promise<StoredMessage[]>;
  /**
   * Every retained message (loaded once at start; the broker matches them in memory), with payload and
   * properties only for those charged at most `inlineMaxBytes`: the others are read with getRetained.
   */
  retainedIndex(inlineMaxBytes: number): Promise<RetainedRecord[]>;
  /** One topic's retained message, payload included. (A persistence every node shares may also be SharesRetained, retained-source.ts.) */
  getRetained(topic: string): Promise<StoredMessage | undefined>;
  close(): Promise<void>;
}
