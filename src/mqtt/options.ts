/**
 * Broker options: one table with each default, validated once by resolveOptions() and frozen. Units are
 * in the names. The hub maps its config (flags, file, CLOUDREST_* variables) onto these.
 */
import type { MqttPersistence } from './persistence.js';

export type DropPolicy = 'drop-oldest' | 'drop-new';

export interface BrokerOptions {
  /** Accept clients that send neither user name nor password. Default false. */
  allowAnonymous?: boolean;
  /** Largest packet accepted from a client, in bytes; told to v5 clients as Maximum Packet Size. Default 1 MiB. */
  maxPacketBytes?: number;
  /** QoS 1/2 PUBLISHes a v5 client may have unacknowledged towards the broker (CONNACK Receive Maximum). Default 65,535. */
  receiveMaximum?: number;
  /** QoS 1/2 messages in flight to one client; the client's own Receive Maximum lowers it further. Default 100. */
  maxInflightPerClient?: number;
  /** Messages waiting for one client (offline, beyond its inflight window, or behind a full socket). Default 1,000. */
  maxQueuedPerClient?: number;
  /** Subscriptions one session may hold; more are refused in SUBACK (0x97 in v5, 0x80 in 3.1.1). Default 10,000. */
  maxSubscriptionsPerClient?: number;
  /**
   * Sessions outliving their connection (Session Expiry Interval > 0, 3.1.1 clean session 0) one owner
   * (principal) may have; a CONNECT that would make one more gets CONNACK 0x97 (5.0) / 3 (3.1.1).
   * Resuming one of them is always allowed; sessions that end with their connection do not count.
   * 0 = no limit. Default 0.
   */
  maxSessionsPerOwner?: number;
  /**
   * Bytes (payload and topic) of messages queued for or in flight to one owner's sessions, all of them
   * together; past it, the drop policy applies to that session's queue as when it is full. 0 = no limit. Default 0.
   */
  maxQueuedBytesPerOwner?: number;
  /** What a full queue does with one more message. Default 'drop-oldest'. */
  dropPolicy?: DropPolicy;
  /** Keep QoS 0 messages for offline persistent sessions too (MQTT allows either). Default false. */
  queueQos0Offline?: boolean;
  /**
   * Largest Keep Alive accepted, in seconds; 0 = no limit. A v5 client asking for more, or for 0, is told
   * this value as Server Keep Alive; a 3.1.1 client asking for more is refused (as Mosquitto does). Default 0.
   */
  keepaliveMaxS?: number;
  /** Server Keep Alive imposed on every v5 client, in seconds; unset = the client's own choice. */
  serverKeepAliveS?: number;
  /** Topic aliases a v5 client may define towards the broker (CONNACK Topic Alias Maximum). Default 64. */
  topicAliasMaximum?: number;
  /** Topic aliases the broker assigns per v5 client on outgoing PUBLISH, within the client's maximum. Default 64. */
  topicAliasMaximumOut?: number;
  /** Cap on the Session Expiry Interval, in seconds; also the expiry of 3.1.1 sessions with clean session 0. Default 86,400. */
  maxSessionExpiryS?: number;
  /** Time allowed between the TCP connection and a CONNECT, in milliseconds. Default 10,000. */
  connectTimeoutMs?: number;
  /** Whether retained messages are supported (CONNACK Retain Available). Default true. */
  retainAvailable?: boolean;
  /** Whether `$share/group/filter` subscriptions are supported. Default true. */
  sharedSubscriptionAvailable?: boolean;
  /** Connections at once; more are refused with CONNACK 0x97 (v5) or 3 (3.1.1). 0 = no limit. Default 0. */
  maxConnections?: number;
  /** Prefix of the client identifiers the broker assigns ([MQTT-3.1.3-6]). Default 'auto-'. */
  assignedClientIdPrefix?: string;
  /** Most levels in a topic name or filter; a longer name is refused (5.0 0x90), a filter too (0x8F). Default 128. */
  maxTopicLevels?: number;
  /** Most UTF-8 bytes in a topic name or filter, refused as maxTopicLevels. Default 1,024. */
  maxTopicBytes?: number;
  /** Retained messages one owner (the publishing principal) may have; more are refused (5.0 0x97). Default 1,000. */
  maxRetainedPerOwner?: number;
  /** Bytes (topic, payload, properties) of retained messages one owner may have. Default 16 MiB. */
  maxRetainedBytesPerOwner?: number;
  /** Retained messages in all. Default 100,000. */
  maxRetained?: number;
  /** Bytes of retained messages in all. Default 256 MiB. */
  maxRetainedBytes?: number;
  /**
   * Retained messages larger than this (bytes, as charged) keep no payload in memory when there is
   * persistence: it is read from there when the message is delivered. Default 1,024.
   */
  retainedInMemoryMaxBytes?: number;
  /** Where sessions, queued messages and retained messages are kept; unset = memory only. */
  persistence?: MqttPersistence;
  /** Clock, in ms since epoch; tests replace it. Default Date.now. */
  now?: () => number;
}

export type ResolvedOptions = Readonly<Required<Omit<BrokerOptions, 'persistence' | 'serverKeepAliveS'>>> & {
  readonly persistence: MqttPersistence | undefined;
  readonly serverKeepAliveS: number | undefined;
};

const DEFAULTS = {
  allowAnonymous: false,
  maxPacketBytes: 1_048_576,
  receiveMaximum: 65_535,
  maxInflightPerClient: 100,
  maxQueuedPerClient: 1_000,
  maxSubscriptionsPerClient: 10_000,
  maxSessionsPerOwner: 0,
  maxQueuedBytesPerOwner: 0,
  dropPolicy: 'drop-oldest',
  queueQos0Offline: false,
  keepaliveMaxS: 0,
  topicAliasMaximum: 64,
  topicAliasMaximumOut: 64,
  maxSessionExpiryS: 86_400,
  connectTimeoutMs: 10_000,
  retainAvailable: true,
  sharedSubscriptionAvailable: true,
  maxConnections: 0,
  assignedClientIdPrefix: 'auto-',
  maxTopicLevels: 128,
  maxTopicBytes: 1024,
  maxRetainedPerOwner: 1000,
  maxRetainedBytesPerOwner: 16 * 1024 * 1024,
  maxRetained: 100_000,
  maxRetainedBytes: 256 * 1024 * 1024,
  retainedInMemoryMaxBytes: 1024,
  now: Date.now,
} as const satisfies Omit<ResolvedOptions, 'persistence' | 'serverKeepAliveS'>;

/** Integer ranges: protocol limits (5.0 §3.1.2, §3.2.2) or what makes sense. */
const RANGES: Partial<Record<keyof BrokerOptions, [number, number]>> = {
  maxPacketBytes: [64, 268_435_460],
  receiveMaximum: [1, 65_535],
  maxInflightPerClient: [1, 65_535],
  maxQueuedPerClient: [0, 10_000_000],
  maxSubscriptionsPerClient: [1, 10_000_000],
  maxSessionsPerOwner: [0, 100_000_000],
  maxQueuedBytesPerOwner: [0, Number.MAX_SAFE_INTEGER],
  keepaliveMaxS: [0, 65_535],
  serverKeepAliveS: [0, 65_535],
  topicAliasMaximum: [0, 65_535],
  topicAliasMaximumOut: [0, 65_535],
  maxSessionExpiryS: [0, 0xffff_ffff],
  connectTimeoutMs: [1, 3_600_000],
  maxConnections: [0, 100_000_000],
  // A topic's length travels in two bytes (3.1.1 §1.5.3, 5.0 §1.5.4), so 65,535 of either is no limit.
  maxTopicLevels: [1, 65_535],
  maxTopicBytes: [1, 65_535],
  maxRetainedPerOwner: [0, 100_000_000],
  maxRetainedBytesPerOwner: [0, Number.MAX_SAFE_INTEGER],
  maxRetained: [0, 100_000_000],
  maxRetainedBytes: [0, Number.MAX_SAFE_INTEGER],
  retainedInMemoryMaxBytes: [0, Number.MAX_SAFE_INTEGER],
};

export function resolveOptions(o: BrokerOptions = {}): ResolvedOptions {
  for (const [key, [min, max]] of Object.entries(RANGES)) {
    const v = o[key as keyof BrokerOptions];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new RangeError(`broker option ${key} must be an integer from ${min} to ${max}, got ${String(v)}`);
    }
  }
  if (o.dropPolicy !== undefined && o.dropPolicy !== 'drop-oldest' && o.dropPolicy !== 'drop-new') {
    throw new RangeError(`broker option dropPolicy must be 'drop-oldest' or 'drop-new', got ${String(o.dropPolicy)}`);
  }
  const defined = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  return Object.freeze({ ...DEFAULTS, persistence: undefined, serverKeepAliveS: undefined, ...defined }) as ResolvedOptions;
}
