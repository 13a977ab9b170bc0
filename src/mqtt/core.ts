/**
 * The broker's shared state behind BrokerContext: routing, retained messages, the session registry and
 * the persistence writes in flight. broker.ts wraps it in the public Broker API.
 */
import type { QoS } from 'mqtt-packet';
import type { Channel } from './channel.js';
import { Deadlines } from './deadlines.js';
import type { BrokerContext, OpenOutcome, OpenRequest, PublishOutcome } from './context.js';
import { resolveHooks, type BrokerHooks, type ResolvedHooks } from './hooks.js';
import { fromStored, isExpired, toStored, type Message } from './message.js';
import { resolveOptions, type BrokerOptions, type ResolvedOptions } from './options.js';
import { OwnerQuotas } from './owner-quotas.js';
import type { MqttPersistence } from './persistence.js';
import { SessionRegistry } from './registry.js';
import { retainedBytes, RetainedStore, type RetainedEntry } from './retained.js';
import type { RetainedQuotas } from './retained-usage.js';
import { sharesRetained, type RetainedSource } from './retained-source.js';
import type { ClusterRouting } from './cluster/routes-hook.js';
import { Router, type Delivery } from './router.js';
import type { Session } from './session.js';
import { BrokerStats } from './stats.js';
import type { SessionCluster } from './cluster/sessions-hooks.js';
import { topicLimitProblem, type TopicLimits } from '../core/topic-limits.js';
import { TopicTree, validateTopicName } from '../core/topic-tree.js';

/** How often sessions that expired in the store (never loaded since a restart) are deleted. */
const EXPIRY_SWEEP_MS = 60_000;
/** Refused retained messages are logged at most this often (with the count since the last line). */
const REFUSAL_LOG_MS = 10_000;
/** A payload whose buffer is this much larger than itself is a view of a read buffer: copied before it is retained. */
const SLACK_BYTES = 8192;

export class BrokerCore implements BrokerContext {
  readonly options: ResolvedOptions;
  readonly hooks: ResolvedHooks;
  readonly stats = new BrokerStats();
  readonly router = new Router();
  readonly retained = new RetainedStore();
  /** Where retained messages live when not in `retained` (PostgreSQL, every node reading it); `$SYS/` ones stay in memory. */
  readonly shared: RetainedSource | undefined;
  readonly quotas: OwnerQuotas;
  readonly registry: SessionRegistry;
  /** In-process listeners (Broker.subscribeLocal): the hub's SSE bridge, $SYS readers... */
  readonly local = new TopicTree<(m: Message) => void>();
  readonly persistence: MqttPersistence | undefined;
  readonly deadlines: Deadlines;
  readonly topicLimits: TopicLimits;
  readonly ready: Promise<void>;
  closing = false;
  /** Set once by Broker.useSessionCluster, before the listeners open. */
  cluster: SessionCluster | undefined = undefined;
  /** The routes and forwards to other nodes (`--redis`); undefined on a single node. */
  routing: ClusterRouting | undefined;
  readonly #writes = new Set<Promise<unknown>>();
  /** Open channels by the credential they authenticated with; bounded by the open connections. */
  readonly #byCredential = new Map<string, Set<Channel>>();
  #sweep: NodeJS.Timeout | undefined;
  readonly #quotas: RetainedQuotas;
  /** Retained messages refused since the last log line about them, and when that was. */
  #refusedUnlogged = 0;
  #refusalLoggedAt = -Infinity;

  constructor(options: BrokerOptions, hooks: BrokerHooks) {
    this.options = resolveOptions(options);
    this.hooks = resolveHooks(hooks, this.options.allowAnonymous);
    this.persistence = this.options.persistence;
    this.quotas = new OwnerQuotas(this.options.maxSessionsPerOwner, this.options.maxQueuedBytesPerOwner);
    this.deadlines = new Deadlines(() => this.now());
    const o = this.options;
    this.topicLimits = { maxLevels: o.maxTopicLevels, maxBytes: o.maxTopicBytes };
    this.#quotas = { maxPerOwner: o.maxRetainedPerOwner, maxBytesPerOwner: o.maxRetainedBytesPerOwner, maxTotal: o.maxRetained, maxBytes: o.maxRetainedBytes };
    const p = this.persistence;
    this.shared = p !== undefined && sharesRetained(p) ? p.sharedRetained(this.#quotas) : undefined;
    this.registry = new SessionRegistry(this);
    this.ready = this.#load();
  }

  now(): number {
    return this.options.now();
  }

  get connectedCount(): number {
    return this.stats.connections;
  }

  track<T>(p: Promise<T>, context: string): Promise<T | undefined> {
    const tracked = p.then(
      (v) => v,
      (err: unknown) => {
        this.hooks.onError(err, `persistence: ${context}`);
        return undefined;
      },
    );
    this.#writes.add(tracked);
    void tracked.then(() => this.#writes.delete(tracked));
    return tracked;
  }

  admitRetained(m: Message, owner: string): boolean {
    // Clearing is always allowed: it is how an owner frees quota.
    if (!m.retain || !this.options.retainAvailable || m.payload.length === 0) return true;
    // Shared: the quotas are checked where the counts are, in the write (route()'s `retained`).
    if (this.shared !== undefined && !m.topic.startsWith('$SYS/')) return true;
    const why = this.retained.usage.exceeded(owner, retainedBytes(m), this.retained.get(m.topic), this.#quotas);
    if (why === null) return true;
    this.#refused(owner, m, why);
    return false;
  }

  #refused(owner: string, m: Message, why: string): void {
    this.stats.retainedRefused++;
    // Logged at most once per interval: a client looping on refusals must not flood the log.
    const now = this.now();
    if (now - this.#refusalLoggedAt < REFUSAL_LOG_MS) {
      this.#refusedUnlogged++;
    } else {
      this.hooks.onWarning('retained message refused: quota exceeded', { owner, topic: m.topic.slice(0, 200), limit: why, refused: this.#refusedUnlogged + 1 });
      this.#refusedUnlogged = 0;
      this.#refusalLoggedAt = now;
    }
  }

  route(m: Message, owner = '', local = false): PublishOutcome {
    let stored: Array<Promise<unknown>> | undefined;
    let retained: Promise<boolean> | undefined;
    const cluster = local ? undefined : this.routing;
    // `$SYS/` values describe this run of the broker: kept in memory only.
    const sys = m.topic.startsWith('$SYS/');
    if (m.retain && this.options.retainAvailable && this.shared !== undefined && !sys) {
      // Every node reads it from the database: no copy here, nothing to tell the other nodes.
      // The hub's own ('', no admitRetained asked) are counted but never refused, as in memory.
      const done = this.track(this.shared.set(m, owner, retainedBytes(m), owner !== ''), 'store a retained message');
      retained = done.then((why) => {
        if (why === undefined || why === null) return true;
        this.#refused(owner, m, why);
        return false;
      });
      (stored ??= []).push(retained);
    } else if (m.retain && this.options.retainAvailable) {
      const bytes = retainedBytes(m);
      this.#retain(m, owner, bytes, sys);
      if (this.persistence !== undefined && !sys) (stored ??= []).push(this.track(this.persistence.setRetained(toStored(m), { owner, bytes }), 'store a retained message'));
      if (cluster !== undefined && !sys) cluster.retained(m, owner, bytes);
    }
    // A snapshot: a listener may unsubscribe (its SSE stream overflowed) while it is called.
    if (this.local.size > 0) for (const fn of this.local.match(m.topic)) fn(m);
    let deliveries = this.router.match(m);
    let nodes = 0;
    let sent: Promise<boolean> | undefined;
    if (cluster !== undefined && !m.topic.startsWith('$SYS/')) ({ local: deliveries, nodes, sent } = cluster.forward(m, deliveries));
    stored = this.#deliver(m, deliveries, stored);
    return { deliveries: deliveries.length + nodes, stored: stored === undefined ? undefined : Promise.all(stored).then(() => undefined), sent, retained };
  }

  /**
   * A message another node forwarded: to this node's subscribers as a local publish would, without
   * forwarding or storing it again; to the shared groups in `groups` only (the other node picked this one).
   * `groupsOnly`: a shared-subscription redelivery, for those groups and no one else.
   * Resolves once the persistent sessions' copies are stored (what the other node's confirmation waits for).
   */
  routeForwarded(m: Message, groups: ReadonlySet<string> | undefined, groupsOnly = false): Promise<unknown> | undefined {
    if (this.local.size > 0 && !groupsOnly) for (const fn of this.local.match(m.topic)) fn(m);
    let deliveries = this.router.match(m);
    // Shared groups deliver here only where the publishing node picked this one.
    if (groupsOnly || deliveries.some((d) => d.group !== undefined)) deliveries = deliveries.filter((d) => (d.group === undefined ? !groupsOnly : groups?.has(d.group.shareFilter) === true));
    const stored = this.#deliver(m, deliveries, undefined);
    return stored === undefined ? undefined : stored.length === 1 ? stored[0] : Promise.all(stored);
  }

  /** A retained message set (or cleared) on another node: kept in memory here, not stored again. */
  retainForwarded(m: Message, owner: string, bytes: number): void {
    // Shared: already in the database every node reads (a node of an older version may still send it).
    if (this.options.retainAvailable && this.shared === undefined) this.#retain(m, owner, bytes, false);
  }

  #retain(m: Message, owner: string, bytes: number, sys: boolean): void {
    // [MQTT-3.3.1-5] stored, replacing the topic's previous one; an empty payload clears it.
    if (m.payload.length === 0) this.retained.delete(m.topic);
    else {
      // A large one lives in persistence only and is read from there for each delivery.
      const onDisk = this.persistence !== undefined && !sys && bytes > this.options.retainedInMemoryMaxBytes;
      this.retained.set({ topic: m.topic, message: onDisk ? undefined : ownPayload(m), qos: m.qos, expiresAt: m.expiresAt, owner, bytes });
    }
  }

  #deliver(m: Message, deliveries: Delivery[], stored: Array<Promise<unknown>> | undefined): Array<Promise<unknown>> | undefined {
    for (const d of deliveries) {
      // [MQTT-3.8.4-8] 5.0: at most the QoS granted; [MQTT-3.3.1-12] RETAIN kept only with Retain As Published.
      const qos = (m.qos < d.qos ? m.qos : d.qos) as QoS;
      d.session.liveDuringReplay?.add(m.topic);
      const s = d.session.deliver(m, qos, m.retain && d.retainAsPublished, d.subscriptionIds, d.group);
      if (s !== undefined) (stored ??= []).push(s);
    }
    return stored;
  }

  async loadRetained(entry: RetainedEntry): Promise<Message | undefined> {
    if (entry.message !== undefined) return entry.message;
    const s = await this.track(this.persistence!.getRetained(entry.topic), 'read a retained message');
    if (s === undefined) return undefined;
    const m = fromStored(s);
    return isExpired(m, this.now()) ? undefined : { ...m, retain: true };
  }

  openSession(ch: Channel, req: OpenRequest, onOpen: (s: Session, present: boolean) => void): Promise<OpenOutcome> {
    return this.registry.open(ch, req, onOpen);
  }

  holdCredential(ch: Channel, credential: string): void {
    ch.credential = credential;
    let set = this.#byCredential.get(credential);
    if (!set) this.#byCredential.set(credential, (set = new Set()));
    set.add(ch);
  }

  forgetCredential(ch: Channel): void {
    const set = ch.credential === undefined ? undefined : this.#byCredential.get(ch.credential);
    if (!set?.delete(ch)) return;
    if (set.size === 0) this.#byCredential.delete(ch.credential!);
  }

  /** The open channels that authenticated with `credential`. */
  channelsWithCredential(credential: string): Channel[] {
    return [...(this.#byCredential.get(credential) ?? [])];
  }

  channelClosed(ch: Channel, sendWill: boolean): void {
    this.registry.closed(ch, sendWill);
  }

  saveSession(session: Session): Promise<void> | undefined {
    if (!session.persistent) return undefined;
    session.stored = true;
    return this.track(this.persistence!.saveSession(session.toStored()), 'save a session').then(() => undefined);
  }

  async flushWrites(): Promise<void> {
    await Promise.all([...this.#writes]);
  }

  /** Deletes the sessions that expired in the store and are not in memory here (the cluster calls it on one node). */
  sweepExpired(): Promise<void> {
    return this.persistence === undefined ? Promise.resolve() : this.#deleteExpired();
  }

  /** Stops timers and waits for the persistence writes in flight. */
  async stop(): Promise<void> {
    this.closing = true;
    clearInterval(this.#sweep);
    this.deadlines.stop();
    this.registry.stop();
    await this.ready;
    while (this.#writes.size > 0) await Promise.all([...this.#writes]);
  }

  async #load(): Promise<void> {
    const p = this.persistence;
    if (p === undefined) return;
    // Shared: nothing to load, only the counts for the metrics.
    if (this.shared !== undefined) await this.#sweepRetained();
    else await this.#loadRetained(p);
    try {
      await this.#deleteExpired();
    } catch (err) {
      this.hooks.onError(err, 'persistence: delete expired sessions');
    }
    try {
      // Stored sessions take their owners' slots before anyone connects (they come into memory only when resumed).
      for (const { clientId, owner } of await p.sessionOwners()) this.quotas.hold(clientId, owner);
    } catch (err) {
      this.hooks.onError(err, 'persistence: count stored sessions');
    }
    if (!this.closing) this.#sweep = setInterval(() => {
      // In a cluster one node sweeps at a time (src/mqtt/cluster/sessions.ts).
      if (this.cluster === undefined) void this.#deleteExpired();
      if (this.shared !== undefined) void this.#sweepRetained();
    }, EXPIRY_SWEEP_MS).unref();
  }

  /** Every retained message into the trie: those small enough with their message, the others as an index entry read when delivered. */
  async #loadRetained(p: MqttPersistence): Promise<void> {
    try {
      const now = this.now();
      let skipped = 0;
      let example = '';
      for (const r of await p.retainedIndex(this.options.retainedInMemoryMaxBytes)) {
        if (r.expiresAt !== undefined && r.expiresAt <= now) continue;
        // Stored before the topic limits, or under larger ones: never delivered, so no subscriber can be hurt by one.
        const problem = validateTopicName(r.topic) ?? topicLimitProblem(r.topic, this.topicLimits);
        if (problem !== null) {
          if (skipped++ === 0) example = `${r.topic.slice(0, 100)}: ${problem}`;
          continue;
        }
        const message = r.payload === undefined ? undefined : { ...fromStored({ topic: r.topic, payload: r.payload, qos: r.qos, retain: true, properties: r.properties, expiresAt: r.expiresAt }), retain: true };
        this.retained.set({ topic: r.topic, message, qos: r.qos, expiresAt: r.expiresAt, owner: r.owner, bytes: r.bytes });
      }
      if (skipped > 0) this.hooks.onWarning('stored retained messages skipped: topic over the limits', { skipped, example });
    } catch (err) {
      this.hooks.onError(err, 'persistence: load retained messages');
    }
  }

  /** Shared: deletes the expired retained messages (each node: the statement is idempotent) and reads the counts. */
  async #sweepRetained(): Promise<void> {
    await this.track(this.shared!.sweep(this.now()), 'delete expired retained messages');
  }

  async #deleteExpired(): Promise<void> {
    const p = this.persistence!;
    const ids = await this.track(p.expiredSessions(this.now()), 'list expired sessions');
    for (const id of ids ?? []) {
      // A session in memory has its own timer and may be connected again.
      if (this.registry.sessions.has(id)) continue;
      void this.track(p.deleteSession(id), 'delete an expired session');
      this.quotas.release(id);
    }
  }
}

/** `m`, or a copy holding only its payload's bytes when the payload is a view of a larger buffer. */
function ownPayload(m: Message): Message {
  const p = m.payload;
  return p.buffer.byteLength > p.length + SLACK_BYTES ? { ...m, payload: Buffer.from(p) } : m;
}
