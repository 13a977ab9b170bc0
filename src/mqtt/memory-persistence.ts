/**
 * MqttPersistence in process memory: for tests, and for brokers that only serve clean sessions and keep
 * nothing across restarts. Same behaviour as SqliteMqttPersistence (both pass one contract).
 *
 * Records are copied in and out, so a caller changing a session or message object afterwards changes
 * nothing stored; payload Buffers and property values are shared, and treated as immutable.
 */
import type { EnqueuedMessage, MqttPersistence, QueuedMessage, RetainedRecord, StoredMessage, StoredSession } from './persistence.js';

/** A session's expiry interval meaning "never" (MQTT 5 §3.1.2.11.2). */
const NEVER_EXPIRES_S = 0xffffffff;

function copySession(session: StoredSession): StoredSession {
  return { ...session, subscriptions: session.subscriptions.map((s) => ({ ...s })) };
}

/** A message with only the fields a MqttPersistence keeps, optional ones present only when set. */
function copyMessage<T extends StoredMessage>(into: T, from: StoredMessage): T {
  if (from.properties !== undefined) into.properties = { ...from.properties };
  if (from.expiresAt !== undefined) into.expiresAt = from.expiresAt;
  return into;
}

function copyRetained(m: StoredMessage): StoredMessage {
  return copyMessage({ topic: m.topic, payload: m.payload, qos: m.qos, retain: true }, m);
}

function copyQueued(m: QueuedMessage): QueuedMessage {
  const copy: QueuedMessage = { seq: m.seq, topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain, released: m.released === true };
  if (m.packetId !== undefined) copy.packetId = m.packetId;
  if (m.subscriptionIds !== undefined) copy.subscriptionIds = [...m.subscriptionIds];
  if (m.shareGroup !== undefined) copy.shareGroup = m.shareGroup;
  return copyMessage(copy, m);
}

export class MemoryMqttPersistence implements MqttPersistence {
  readonly #sessions = new Map<string, StoredSession>();
  /** Per client, messages by seq; Map order is insertion order, which is seq order. */
  readonly #queues = new Map<string, Map<number, QueuedMessage>>();
  readonly #incomingQos2 = new Map<string, Set<number>>();
  readonly #retained = new Map<string, { message: StoredMessage; owner: string; bytes: number }>();
  #lastSeq = 0;

  // Sessions

  getSession(clientId: string): Promise<StoredSession | undefined> {
    const session = this.#sessions.get(clientId);
    return Promise.resolve(session && copySession(session));
  }

  saveSession(session: StoredSession): Promise<void> {
    this.#sessions.set(session.clientId, copySession(session));
    return Promise.resolve();
  }

  deleteSession(clientId: string): Promise<void> {
    this.#sessions.delete(clientId);
    this.#queues.delete(clientId);
    this.#incomingQos2.delete(clientId);
    return Promise.resolve();
  }

  sessionOwners(): Promise<Array<{ clientId: string; owner: string }>> {
    return Promise.resolve(Array.from(this.#sessions.values(), (s) => ({ clientId: s.clientId, owner: s.owner })));
  }

  /** Expired once `disconnectedAt + expiryIntervalS` is reached; interval 0 ends the session at disconnect. */
  expiredSessions(now: number): Promise<string[]> {
    const expired: string[] = [];
    for (const s of this.#sessions.values()) {
      if (s.disconnectedAt === null || s.expiryIntervalS === NEVER_EXPIRES_S) continue;
      if (s.disconnectedAt + s.expiryIntervalS * 1000 <= now) expired.push(s.clientId);
    }
    return Promise.resolve(expired);
  }

  // Queue

  enqueue(clientId: string, messages: EnqueuedMessage[]): Promise<number[]> {
    if (messages.length === 0) return Promise.resolve([]);
    let queue = this.#queues.get(clientId);
    if (queue === undefined) {
      queue = new Map();
      this.#queues.set(clientId, queue);
    }
    const seqs: number[] = [];
    for (const m of messages) {
      const seq = ++this.#lastSeq;
      const stored: QueuedMessage = { seq, topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain, released: false };
      if (m.subscriptionIds !== undefined) stored.subscriptionIds = [...m.subscriptionIds];
      if (m.shareGroup !== undefined) stored.shareGroup = m.shareGroup;
      queue.set(seq, copyMessage(stored, m));
      seqs.push(seq);
    }
    return Promise.resolve(seqs);
  }

  queued(clientId: string, limit: number): Promise<QueuedMessage[]> {
    const queue = this.#queues.get(clientId);
    if (queue === undefined || !(limit > 0)) return Promise.resolve([]);
    // In flight (packet id assigned) first: they are resent before anything new ([MQTT-4.4.0-1]).
    const inFlight: QueuedMessage[] = [];
    const waiting: QueuedMessage[] = [];
    for (const m of queue.values()) {
      if (m.packetId !== undefined) inFlight.push(m);
      else if (waiting.length < limit) waiting.push(m);
    }
    return Promise.resolve([...inFlight, ...waiting].slice(0, limit).map(copyQueued));
  }

  updateQueued(clientId: string, seq: number, change: { packetId?: number; released?: boolean }): Promise<void> {
    const m = this.#queues.get(clientId)?.get(seq);
    if (m !== undefined) {
      if (change.packetId !== undefined) m.packetId = change.packetId;
      if (change.released !== undefined) m.released = change.released;
    }
    return Promise.resolve();
  }

  removeQueued(clientId: string, seq: number): Promise<void> {
    const queue = this.#queues.get(clientId);
    queue?.delete(seq);
    if (queue?.size === 0) this.#queues.delete(clientId);
    return Promise.resolve();
  }

  countQueued(clientId: string): Promise<number> {
    return Promise.resolve(this.#queues.get(clientId)?.size ?? 0);
  }

  // Incoming QoS 2

  addIncomingQos2(clientId: string, packetId: number): Promise<void> {
    let ids = this.#incomingQos2.get(clientId);
    if (ids === undefined) {
      ids = new Set();
      this.#incomingQos2.set(clientId, ids);
    }
    ids.add(packetId);
    return Promise.resolve();
  }

  removeIncomingQos2(clientId: string, packetId: number): Promise<void> {
    const ids = this.#incomingQos2.get(clientId);
    ids?.delete(packetId);
    if (ids?.size === 0) this.#incomingQos2.delete(clientId);
    return Promise.resolve();
  }

  incomingQos2(clientId: string): Promise<number[]> {
    return Promise.resolve([...(this.#incomingQos2.get(clientId) ?? [])].sort((a, b) => a - b));
  }

  // Retained

  setRetained(message: StoredMessage, charge: { owner: string; bytes: number } = { owner: '', bytes: 0 }): Promise<void> {
    // [MQTT-3.3.1-6/7]: a retained PUBLISH with an empty payload removes the topic's retained message.
    if (message.payload.length === 0) this.#retained.delete(message.topic);
    else this.#retained.set(message.topic, { message: copyRetained(message), owner: charge.owner, bytes: charge.bytes });
    return Promise.resolve();
  }

  allRetained(): Promise<StoredMessage[]> {
    return Promise.resolve([...this.#retained.values()].map((r) => copyRetained(r.message)));
  }

  retainedIndex(inlineMaxBytes: number): Promise<RetainedRecord[]> {
    const out: RetainedRecord[] = [];
    for (const { message: m, owner, bytes } of this.#retained.values()) {
      const r: RetainedRecord = { topic: m.topic, qos: m.qos, owner, bytes };
      if (m.expiresAt !== undefined) r.expiresAt = m.expiresAt;
      if (bytes <= inlineMaxBytes) {
        r.payload = m.payload;
        if (m.properties !== undefined) r.properties = { ...m.properties };
      }
      out.push(r);
    }
    return Promise.resolve(out);
  }

  getRetained(topic: string): Promise<StoredMessage | undefined> {
    const r = this.#retained.get(topic);
    return Promise.resolve(r && copyRetained(r.message));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
