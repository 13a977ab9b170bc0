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
import { RetainedStore } from './retained.js';
import { Router } from './router.js';
import type { Session } from './session.js';
import { BrokerStats } from './stats.js';
import { TopicTree } from '../core/topic-tree.js';

/** How often sessions that expired in the store (never loaded since a restart) are deleted. */
const EXPIRY_SWEEP_MS = 60_000;

export class BrokerCore implements BrokerContext {
  readonly options: ResolvedOptions;
  readonly hooks: ResolvedHooks;
  readonly stats = new BrokerStats();
  readonly router = new Router();
  readonly retained = new RetainedStore();
  readonly quotas: OwnerQuotas;
  readonly registry: SessionRegistry;
  /** In-process listeners (Broker.subscribeLocal): the hub's SSE bridge, $SYS readers... */
  readonly local = new TopicTree<(m: Message) => void>();
  readonly persistence: MqttPersistence | undefined;
  readonly deadlines: Deadlines;
  readonly ready: Promise<void>;
  closing = false;
  readonly #writes = new Set<Promise<unknown>>();
  /** Open channels by the credential they authenticated with; bounded by the open connections. */
  readonly #byCredential = new Map<string, Set<Channel>>();
  #sweep: NodeJS.Timeout | undefined;

  constructor(options: BrokerOptions, hooks: BrokerHooks) {
    this.options = resolveOptions(options);
    this.hooks = resolveHooks(hooks, this.options.allowAnonymous);
    this.persistence = this.options.persistence;
    this.quotas = new OwnerQuotas(this.options.maxSessionsPerOwner, this.options.maxQueuedBytesPerOwner);
    this.deadlines = new Deadlines(() => this.now());
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

  route(m: Message): PublishOutcome {
    let stored: Array<Promise<unknown>> | undefined;
    if (m.retain && this.options.retainAvailable) {
      // [MQTT-3.3.1-5] stored, replacing the topic's previous one; an empty payload clears it.
      this.retained.set(m);
      // `$SYS/` values describe this run of the broker: kept in memory only.
      if (this.persistence !== undefined && !m.topic.startsWith('$SYS/')) (stored ??= []).push(this.track(this.persistence.setRetained(toStored(m)), 'store a retained message'));
    }
    // A snapshot: a listener may unsubscribe (its SSE stream overflowed) while it is called.
    if (this.local.size > 0) for (const fn of this.local.match(m.topic)) fn(m);
    const deliveries = this.router.match(m);
    for (const d of deliveries) {
      // [MQTT-3.8.4-8] 5.0: at most the QoS granted; [MQTT-3.3.1-12] RETAIN kept only with Retain As Published.
      const qos = (m.qos < d.qos ? m.qos : d.qos) as QoS;
      const s = d.session.deliver(m, qos, m.retain && d.retainAsPublished, d.subscriptionIds, d.group);
      if (s !== undefined) (stored ??= []).push(s);
    }
    return { deliveries: deliveries.length, stored: stored === undefined ? undefined : Promise.all(stored).then(() => undefined) };
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
    return this.track(this.persistence!.saveSession(session.toStored()), 'save a session').then(() => undefined);
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
    try {
      const now = this.now();
      for (const s of await p.allRetained()) {
        const m = fromStored(s);
        if (!isExpired(m, now)) this.retained.set({ ...m, retain: true });
      }
      await this.#deleteExpired();
    } catch (err) {
      this.hooks.onError(err, 'persistence: load retained messages');
    }
    try {
      // Stored sessions take their owners' slots before anyone connects (they come into memory only when resumed).
      for (const { clientId, owner } of await p.sessionOwners()) this.quotas.hold(clientId, owner);
    } catch (err) {
      this.hooks.onError(err, 'persistence: count stored sessions');
    }
    if (!this.closing) this.#sweep = setInterval(() => void this.#deleteExpired(), EXPIRY_SWEEP_MS).unref();
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
