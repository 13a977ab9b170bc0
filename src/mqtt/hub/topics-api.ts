/**
 * MQTT over HTTP (docs/api.md "MQTT topics"): `POST /v1/topics/{topic}` publishes the body as the
 * payload, `GET /v1/topics/events?filter=F` streams matching messages as server-sent events. Both act as
 * the token's user and go through the same ACL as an MQTT client of that user. A stream ends when its
 * token is revoked.
 */
import { isUtf8 } from 'node:buffer';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { validateTopicFilter, validateTopicName } from '../../core/topic-tree.js';
import { HubError } from '../../errors.js';
import { LRUCache } from 'lru-cache';
import { bearerToken, type Authenticator, type Session } from '../../core/auth/authenticator.js';
import type { HubMetrics } from '../../core/metrics.js';
import { requireSession } from '../../http/api.js';
import { LiveSessions } from '../../http/live-sessions.js';
import { openSse, type SseStream } from '../../http/sse.js';
import { topicLimitProblem, type TopicLimits } from '../../core/topic-limits.js';
import { STREAM_RETRY_AFTER_S, type StreamSlots } from '../../http/stream-slots.js';
import { ClusterUnavailableError, RetainedQuotaError, type Broker } from '../broker.js';
import type { Message } from '../message.js';
import type { Acl, AclAction, Identity } from './acl.js';
import type { DeviceOwnership } from './ownership.js';

export interface TopicsApiDeps {
  broker: Broker;
  acl: Acl;
  auth: Authenticator;
  ownership: DeviceOwnership;
  log: Logger;
  metrics: HubMetrics;
  maxBodyBytes: number;
  heartbeatMs: number;
  /** The stream slots shared with /v1/events: hub-wide and per user. */
  slots: StreamSlots;
  /** Bytes an event stream may hold for a slow reader before it is closed. */
  maxBufferedBytes: number;
}

export class TopicsApi {
  readonly #streams = new Set<SseStream>();
  /** Owners whose devices were re-read lately: a burst of requests costs one query. */
  readonly #freshOwners = new LRUCache<string, true>({ max: 10_000, ttl: 5_000 });
  /** The open streams by token, to end those of a revoked token. */
  readonly #live = new LiveSessions();
  readonly #unsubscribe: () => void;
  /** The broker's topic limits, for topics and filters given over HTTP too. */
  readonly #limits: TopicLimits;

  constructor(private readonly d: TopicsApiDeps) {
    this.#unsubscribe = d.auth.onRevoked((ended) => this.#live.end(ended));
    const o = d.broker.options;
    this.#limits = { maxLevels: o.maxTopicLevels, maxBytes: o.maxTopicBytes };
  }

  register(app: FastifyInstance): void {
    const d = this.d;
    // In a scope of its own: any content type is the payload, as raw bytes.
    void app.register(async (scope) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: d.maxBodyBytes }, (_req, body, done) => done(null, body));

      scope.get('/v1/topics/events', async (req, res) => {
        const { filter } = req.query as { filter?: string };
        if (typeof filter !== 'string' || filter === '') throw new HubError('CR_ERR_VALIDATION', 'query parameter filter is required');
        const problem = filter.startsWith('$share/') ? 'shared subscriptions are for MQTT clients' : (validateTopicFilter(filter) ?? topicLimitProblem(filter, this.#limits));
        if (problem !== null) throw new HubError('CR_ERR_TOPIC_INVALID', `filter: ${problem}`);
        const { session, identity, whole } = await this.#authorizeFilter(req, filter);
        const slot = d.slots.acquire(session.user.id);
        if (typeof slot !== 'function') {
          return res.code(slot.status).header('retry-after', String(STREAM_RETRY_AFTER_S)).header('cache-control', 'no-store').send(slot.toJSON());
        }
        res.hijack();
        const sse = openSse(req.raw, res.raw, { heartbeatMs: d.heartbeatMs, maxBufferedBytes: d.maxBufferedBytes, retryMs: 2000 });
        this.#streams.add(sse);
        d.metrics.sseClients.inc();
        const release = this.#live.hold(session, () => sse.close());
        // Granted in part: only the topics this user may read, as for their MQTT clients (a few streams: asked for each message).
        const send = (m: Message): void => {
          if (whole || d.acl.allows(identity, 'subscribe', m.topic, '')) sse.send({ event: 'message', data: messageJson(m) });
        };
        const unsubscribe = d.broker.subscribeLocal(filter, send, { retained: true });
        sse.onClose((reason) => {
          release();
          slot();
          unsubscribe();
          this.#streams.delete(sse);
          d.metrics.sseClients.dec();
          if (reason === 'overflow') d.log.warn({ filter }, 'topic event stream closed: the client read too slowly');
        });
        // A revocation while the stream was being set up came before it was held: ask once more.
        if (!(await d.auth.stillValid(bearerToken(req.raw, true)!))) sse.close();
      });

      scope.post('/v1/topics/*', async (req, res) => {
        const topic = (req.params as { '*': string })['*'];
        const problem = validateTopicName(topic) ?? topicLimitProblem(topic, this.#limits);
        if (problem !== null) throw new HubError('CR_ERR_TOPIC_INVALID', `topic: ${problem}`);
        const { qos: qosText, retain: retainText } = req.query as { qos?: string; retain?: string };
        if (qosText !== undefined && qosText !== '0' && qosText !== '1') throw new HubError('CR_ERR_VALIDATION', 'qos must be 0 or 1');
        if (retainText !== undefined && retainText !== 'true' && retainText !== 'false') throw new HubError('CR_ERR_VALIDATION', 'retain must be true or false');
        const { user } = await this.#authorize(req, 'publish', topic);
        const qos = qosText === '1' ? 1 : 0;
        const retain = retainText === 'true';
        const payload = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        // QoS 1: answered once the persistent copies (queued for offline sessions, retained) are stored.
        // Retained, it is charged to the user as their MQTT connections' messages are (principal user:ID).
        try {
          await d.broker.publish({ topic, payload, qos, retain, owner: `user:${user.id}` });
        } catch (err) {
          if (err instanceof RetainedQuotaError) throw new HubError('CR_ERR_RETAINED_QUOTA', 'retained message quota exceeded: clear retained messages (an empty body with retain=true) to free it');
          if (err instanceof ClusterUnavailableError) throw new HubError('CR_ERR_BACKEND_UNAVAILABLE', `${err.message}: try again`);
          throw err;
        }
        return res.header('cache-control', 'no-store').send({ topic, qos, retain, bytes: payload.length });
      });
    });
  }

  closeAll(): void {
    this.#unsubscribe();
    for (const s of [...this.#streams]) s.close();
  }

  async #authorize(req: FastifyRequest, action: AclAction, name: string): Promise<Session> {
    const { session, identity } = await this.#identify(req);
    // No MQTT client id here: rules with %c do not grant anything over HTTP.
    if (!this.d.acl.allows(identity, action, name, '')) throw new HubError('CR_ERR_TOPIC_FORBIDDEN', `${action} on ${JSON.stringify(name)} is not allowed`);
    return session;
  }

  /** A stream's filter: granted whole, or in part (then each message is checked), or 403 when no allowed topic matches it. */
  async #authorizeFilter(req: FastifyRequest, filter: string): Promise<{ session: Session; identity: Identity; whole: boolean }> {
    const { session, identity } = await this.#identify(req);
    const how = this.d.acl.subscription(identity, filter, '');
    if (how === 'none') throw new HubError('CR_ERR_TOPIC_FORBIDDEN', `subscribe on ${JSON.stringify(filter)} is not allowed`);
    return { session, identity, whole: how === 'all' };
  }

  async #identify(req: FastifyRequest): Promise<{ session: Session; identity: Identity }> {
    const session = await requireSession(this.d.auth, req);
    const { user } = session;
    const email = user.email.toLowerCase();
    if (!this.#freshOwners.has(email)) {
      await this.d.ownership.refreshOwner(email);
      this.#freshOwners.set(email, true);
    }
    return { session, identity: { kind: 'user', id: user.id, email } };
  }
}

/** `{"topic":..,"qos":..,"retain":..,"payload":"<UTF-8 text>"}`, or `"payloadBase64"` for other bytes. */
function messageJson(m: Message): string {
  const body = isUtf8(m.payload) ? `"payload":${JSON.stringify(m.payload.toString('utf8'))}` : `"payloadBase64":"${m.payload.toString('base64')}"`;
  return `{"topic":${JSON.stringify(m.topic)},"qos":${m.qos},"retain":${m.retain},${body}}`;
}
