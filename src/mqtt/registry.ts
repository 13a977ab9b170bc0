/**
 * Which session each client id has and which connection holds it (EMQX's emqx_cm): opening sessions
 * with take-over and clean start, their expiry, wills, and restoring sessions from persistence.
 */
import type { Channel, Will } from './channel.js';
import type { BrokerContext, OpenOutcome, OpenRequest } from './context.js';
import { RC } from './reason-codes.js';
import { receiveCheckFor } from './receive-check.js';
import { Session } from './session.js';
import { redeliverEnded, redeliverOffline } from './shared-redelivery.js';
import { createSubscription, parseFilter } from './subscription.js';

/** setTimeout's limit; longer expiry intervals are waited for in steps. */
const MAX_TIMER_MS = 2_147_483_647;
const NEVER_EXPIRES = 0xffff_ffff;

export class SessionRegistry {
  readonly sessions = new Map<string, Session>();
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(private readonly ctx: BrokerContext) {}

  /** See BrokerContext.openSession. Opens for one client id run one after another. */
  open(ch: Channel, req: OpenRequest, onOpen: (s: Session, present: boolean) => void): Promise<OpenOutcome> {
    return this.#locked(req.clientId, () => this.#open(ch, req, onOpen));
  }

  /** Runs `fn` after whatever runs for `clientId` already (opens, hand-overs, adoptions). */
  #locked<T>(clientId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(clientId) ?? Promise.resolve();
    const run = prev.then(fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(clientId, tail);
    void tail.then(() => {
      if (this.#locks.get(clientId) === tail) this.#locks.delete(clientId);
    });
    return run;
  }

  /**
   * Cluster take-over: another node opens this client id's session. The connection here, if any, gets
   * DISCONNECT 0x8E; the session leaves this node with its state written to persistence (or ends, for
   * a clean start there or a session that does not outlive its connection). Resolves once written.
   */
  handOver(clientId: string, principal: string, cleanStart: boolean): Promise<boolean> {
    return this.#locked(clientId, async () => {
      const s = this.sessions.get(clientId);
      if (s === undefined) return false;
      // Another principal's: it stays, and the asking node refuses the CONNECT, as one node does.
      if (s.owner !== principal) return true;
      if (s.channel !== undefined) {
        const old = s.channel;
        old.takenOver = true;
        old.disconnect(RC.SESSION_TAKEN_OVER, 'another connection took the session over');
      }
      if (cleanStart || !s.persistent) this.end(s);
      else {
        // The resuming node cancels the will ([MQTT-3.1.3-9]): the session goes on there.
        if (s.pendingWill !== undefined) clearTimeout(s.pendingWill.timer);
        s.pendingWill = undefined;
        s.disconnectedAt ??= this.ctx.now();
        void this.ctx.saveSession(s);
        this.#release(s);
      }
      await this.ctx.flushWrites();
      return false;
    });
  }

  /**
   * Cluster fencing (src/mqtt/cluster/fence.ts): this node lost Redis and may soon be counted dead.
   * Every connection ends (5.0: DISCONNECT `reasonCode`) and every session leaves this node's memory,
   * its state kept in persistence; no will is published here: the node that takes this one's state over
   * publishes them, or this node once it rejoins.
   */
  fenceAll(reasonCode: number, reasonString: string): void {
    for (const s of [...this.sessions.values()]) {
      if (s.pendingWill !== undefined) clearTimeout(s.pendingWill.timer);
      s.pendingWill = undefined;
      if (s.channel !== undefined) {
        const ch = s.channel;
        ch.takenOver = true;
        ch.disconnect(reasonCode, reasonString, false);
      }
      s.disconnectedAt ??= this.ctx.now();
      if (s.persistent) void this.ctx.saveSession(s);
      this.#release(s);
    }
  }

  /**
   * Cluster: brings a stored session of a dead node into this node's memory (its subscriptions route
   * here again, its expiry runs here), counted as disconnected since `disconnectedAt` when the store
   * has it connected. `will`, if given, waits here for its due time as the session's pending will.
   * 'present': this node has the session already (its client came back here first: the will is void);
   * 'none': no stored session (it did not outlive its connection, or expired).
   */
  adopt(clientId: string, disconnectedAt: number, will?: { message: Will['message']; principal: string; dueAt: number }): Promise<'adopted' | 'present' | 'none'> {
    return this.#locked(clientId, async () => {
      const p = this.ctx.persistence;
      if (this.sessions.has(clientId)) return 'present';
      if (p === undefined) return 'none';
      const stored = await p.getSession(clientId);
      if (stored === undefined) return 'none';
      if (stored.disconnectedAt === null) await p.saveSession({ ...stored, disconnectedAt });
      await this.#load(clientId);
      const s = this.sessions.get(clientId);
      if (s === undefined) return 'none';
      if (will !== undefined) {
        const timer = setTimeout(() => {
          s.pendingWill = undefined;
          this.publishWill(clientId, will.message, will.principal);
          this.ctx.cluster?.willDone(clientId);
        }, Math.max(0, Math.min(will.dueAt - this.ctx.now(), MAX_TIMER_MS))).unref();
        s.pendingWill = { message: will.message, principal: will.principal, timer, dueAt: will.dueAt };
      }
      return 'adopted';
    });
  }

  /** The session leaves this node's memory and routing; what persistence holds stays. */
  #release(s: Session): void {
    clearTimeout(s.expiryTimer);
    s.expiryTimer = undefined;
    for (const sub of s.subscriptions.values()) this.ctx.router.remove(sub);
    s.clearSubscriptions();
    s.outbox.clear();
    if (this.sessions.get(s.clientId) === s) {
      this.sessions.delete(s.clientId);
      this.ctx.quotas.release(s.clientId);
    }
    this.ctx.cluster?.ended(s.clientId);
  }

  async #open(ch: Channel, req: OpenRequest, onOpen: (s: Session, present: boolean) => void): Promise<OpenOutcome> {
    const { persistence, quotas, cluster } = this.ctx;
    if (cluster !== undefined) {
      try {
        // Another principal's session on another node: refused there, so here too, and nothing moves.
        if ((await cluster.claim(req.clientId, req.principal, req.cleanStart)) === 'refused') return 'refused';
      } catch (err) {
        // Redis away: which node holds the session is unknown, so none is opened here.
        this.ctx.hooks.onError(err, 'cluster: take the session over');
        return 'unavailable';
      }
    }
    // A session only in the store (after a restart) comes back for a clean start too, which then ends
    // it as one in memory: only its owner may, and messages it was given by a shared group go to
    // other members. In a cluster another node may have stored it, so it is always looked for.
    if (!this.sessions.has(req.clientId) && persistence !== undefined && (!req.cleanStart || quotas.holds(req.clientId) || cluster !== undefined)) await this.#load(req.clientId);
    if (ch.state === 'closed') return 'closed';
    let s = this.sessions.get(req.clientId);
    if (s !== undefined && s.owner !== req.principal) return 'refused';
    // Checked before anything changes, and with no await until the slot is held below.
    if (req.expiryIntervalS > 0 && !quotas.admits(req.clientId, req.principal)) {
      this.ctx.stats.sessionsRefused++;
      return 'quota';
    }
    if (s === undefined && req.cleanStart && persistence !== undefined) {
      void this.ctx.track(persistence.deleteSession(req.clientId), 'delete a session');
      quotas.release(req.clientId);
    }
    // [MQTT-3.1.4-3] take-over: the existing connection is closed (5.0: DISCONNECT 0x8E first).
    if (s?.channel !== undefined) {
      const old = s.channel;
      old.takenOver = true;
      old.disconnect(RC.SESSION_TAKEN_OVER, 'another connection took the session over');
    }
    let present = false;
    // [MQTT-3.1.2-4] 5.0 / [MQTT-3.1.2-6] 3.1.1: clean start discards any existing session.
    if (s !== undefined && req.cleanStart) {
      this.end(s);
      s = undefined;
    }
    const wasPersistent = s?.persistent === true;
    if (s === undefined) {
      s = new Session(this.ctx, req.clientId, req.principal, req.protocolVersion, req.expiryIntervalS);
      this.sessions.set(req.clientId, s);
    } else {
      present = true;
      clearTimeout(s.expiryTimer);
      s.expiryTimer = undefined;
      // [MQTT-3.1.3-9] a will still waiting for its delay is not sent once the session resumes.
      if (s.pendingWill !== undefined) clearTimeout(s.pendingWill.timer);
      s.pendingWill = undefined;
      s.protocolVersion = req.protocolVersion;
      s.expiryIntervalS = req.expiryIntervalS;
    }
    s.disconnectedAt = null;
    this.ctx.stats.connections++;
    this.ctx.stats.connectionsTotal++;
    if (s.expiryIntervalS > 0) quotas.hold(s.clientId, s.owner);
    else quotas.release(s.clientId);
    onOpen(s, present);
    cluster?.opened(s.clientId, s.owner, ch.will, s.expiryIntervalS);
    if (s.persistent) void this.ctx.saveSession(s);
    else if ((wasPersistent || s.stored) && persistence !== undefined) {
      s.stored = false;
      void this.ctx.track(persistence.deleteSession(s.clientId), 'delete a session');
    }
    return 'opened';
  }

  /** The connection holding `ch.session` ended. */
  closed(ch: Channel, sendWill: boolean): void {
    const s = ch.session;
    if (s === undefined || s.channel !== ch) return;
    s.channel = undefined;
    s.disconnectedAt = this.ctx.now();
    this.ctx.stats.connections--;
    s.outbox.dropQos0();
    if (sendWill && ch.will !== undefined) this.#will(s, ch.will, ch.principal);
    if (!ch.takenOver) this.ctx.cluster?.closed(s.clientId, s.pendingWill?.dueAt);
    // A take-over hands the session to the new connection, which decides about clean start.
    if (ch.takenOver) return;
    if (s.expiryIntervalS === 0) {
      this.end(s);
      return;
    }
    this.#armExpiry(s, s.expiryIntervalS * 1000);
    redeliverOffline(this.ctx, s);
    if (s.persistent) void this.ctx.saveSession(s);
  }

  /** Ends a session: its subscriptions go, messages picked for it from shared groups go to other members. */
  end(s: Session): void {
    clearTimeout(s.expiryTimer);
    s.expiryTimer = undefined;
    const { router, persistence } = this.ctx;
    for (const sub of s.subscriptions.values()) router.remove(sub);
    s.clearSubscriptions();
    redeliverEnded(this.ctx, s, s.outbox.clear());
    // [MQTT-3.1.3-9] the will is sent when the session ends, if its delay has not passed yet.
    const will = s.pendingWill;
    if (will !== undefined) {
      clearTimeout(will.timer);
      s.pendingWill = undefined;
      this.publishWill(s.clientId, will.message, will.principal);
    }
    if (this.sessions.get(s.clientId) === s) {
      this.sessions.delete(s.clientId);
      this.ctx.quotas.release(s.clientId);
      this.ctx.cluster?.ended(s.clientId);
    }
    if (persistence !== undefined && (s.persistent || s.stored)) {
      s.stored = false;
      void this.ctx.track(persistence.deleteSession(s.clientId), 'delete a session');
    }
  }

  /**
   * The authorization hooks may answer otherwise now (an ACL or ownership change): every subscription
   * in memory is asked about again, and what the per-message checks remember is dropped.
   */
  reauthorize(): void {
    const { hooks } = this.ctx;
    for (const s of this.sessions.values()) {
      for (const sub of s.subscriptions.values()) sub.receive = receiveCheckFor(hooks.authorizeSubscribe(s.owner, sub.filter, s.clientId), hooks, s.owner, s.clientId);
    }
  }

  /** Stops every timer (broker shutdown); sessions stay as they are in persistence. */
  stop(): void {
    for (const s of this.sessions.values()) {
      clearTimeout(s.expiryTimer);
      if (s.pendingWill !== undefined) clearTimeout(s.pendingWill.timer);
    }
  }

  #will(s: Session, will: Will, principal: string): void {
    const message = will.expiryS === undefined ? will.message : { ...will.message, expiresAt: this.ctx.now() + will.expiryS * 1000 };
    // 5.0 §3.1.3.2.2: after the Will Delay Interval, or when the session ends if that is sooner.
    if (will.delayS === 0 || s.expiryIntervalS === 0) return this.publishWill(s.clientId, message, principal);
    const timer = setTimeout(() => {
      s.pendingWill = undefined;
      this.publishWill(s.clientId, message, principal);
      this.ctx.cluster?.willDone(s.clientId);
    }, Math.min(will.delayS * 1000, MAX_TIMER_MS)).unref();
    s.pendingWill = { message, principal, timer, dueAt: this.ctx.now() + will.delayS * 1000 };
  }

  /** Publishes a will as `principal` (if it may publish there), here and for the cluster's sessions layer. */
  publishWill(clientId: string, message: Will['message'], principal: string): void {
    const { hooks } = this.ctx;
    if (message.topic.startsWith('$SYS') || !hooks.authorizePublish(principal, message.topic, clientId)) return;
    this.ctx.stats.messagesIn[message.qos]++;
    this.ctx.stats.bytesIn[message.qos] += message.payload.length;
    // A will past its owner's retained quota still goes to the subscribers, as a client's QoS 0 would.
    this.ctx.route(this.ctx.admitRetained(message, principal) ? message : { ...message, retain: false }, principal);
  }

  #armExpiry(s: Session, ms: number): void {
    clearTimeout(s.expiryTimer);
    if (s.expiryIntervalS === NEVER_EXPIRES) return;
    s.expiryTimer = setTimeout(() => {
      if (s.connected) return;
      if (ms > MAX_TIMER_MS) this.#armExpiry(s, ms - MAX_TIMER_MS);
      else this.end(s);
    }, Math.min(ms, MAX_TIMER_MS)).unref();
  }

  /** Brings a persistent session back from the store (after a restart), unless it has expired. */
  async #load(clientId: string): Promise<void> {
    const p = this.ctx.persistence!;
    const stored = await p.getSession(clientId);
    if (stored === undefined || this.sessions.has(clientId)) return;
    const now = this.ctx.now();
    const leftMs = stored.disconnectedAt === null ? stored.expiryIntervalS * 1000 : stored.disconnectedAt + stored.expiryIntervalS * 1000 - now;
    if (stored.expiryIntervalS !== NEVER_EXPIRES && leftMs <= 0) {
      void this.ctx.track(p.deleteSession(clientId), 'delete an expired session');
      this.ctx.quotas.release(clientId);
      return;
    }
    const [queued, qos2] = await Promise.all([p.queued(clientId, this.ctx.options.maxQueuedPerClient + this.ctx.options.maxInflightPerClient), p.incomingQos2(clientId)]);
    if (this.sessions.has(clientId)) return;
    const s = new Session(this.ctx, clientId, stored.owner, stored.protocolVersion, stored.expiryIntervalS);
    s.disconnectedAt = stored.disconnectedAt ?? now;
    s.stored = true;
    for (const sub of stored.subscriptions) {
      const parsed = parseFilter(sub.filter);
      if ('problem' in parsed) continue;
      const subscription = createSubscription(s, sub.filter, parsed, sub);
      // Granted under the rules of its time: asked again (ownership or the ACL file may have changed since).
      subscription.receive = receiveCheckFor(this.ctx.hooks.authorizeSubscribe(s.owner, sub.filter, clientId), this.ctx.hooks, s.owner, clientId);
      s.addSubscription(subscription);
      this.ctx.router.add(subscription);
    }
    s.outbox.restore(queued);
    if (qos2.length > 0) s.incomingQos2 = new Set(qos2);
    this.sessions.set(clientId, s);
    this.#armExpiry(s, leftMs);
  }
}
