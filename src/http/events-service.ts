import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Bus } from '../core/bus.js';
import type { Presence } from '../core/presence.js';
import type { HubError } from '../errors.js';
import { allows, bearerToken, type Authenticator } from '../core/auth/authenticator.js';
import type { EventHistory, SinceResult } from './event-history.js';
import { ResumedFeed, toSse, type LiveEvent } from './resumed-feed.js';
import { LiveSessions } from './live-sessions.js';
import type { HubMetrics } from '../core/metrics.js';
import { sendError } from './reply.js';
import { openSse, parseLastEventId, type SseStream } from './sse.js';
import { STREAM_RETRY_AFTER_S, type StreamSlots } from './stream-slots.js';

export interface EventsServiceOptions {
  bus: Bus;
  auth: Authenticator;
  /** The status snapshot a stream starts with. */
  presence: Presence;
  metrics: HubMetrics;
  /** Recent events for Last-Event-ID resume (src/backends.ts picks the implementation). */
  history: EventHistory;
  heartbeatMs: number;
  /** The stream slots shared with /v1/topics/events: hub-wide and per user. */
  slots: StreamSlots;
  /** Bytes an SSE response may hold for a slow reader before it is cut (it resumes with Last-Event-ID). */
  maxBufferedBytes?: number;
}

const DEVICE_EVENTS = /^\/v1\/devices\/([^/?]+)\/events(?:\?.*)?$/;
const ALL_EVENTS = /^\/v1\/events(?:\?.*)?$/;

/**
 * Device notifications and up/down as server-sent events: `GET /v1/devices/{id}/events` for one
 * device, `GET /v1/events` for all of the user's devices. Events come from the Bus (so on a scaled-out
 * hub every front node sees them), go into a bounded history for Last-Event-ID resume, then out to the
 * streams listening for that device. A stream ends when its token is revoked (logout, token deleted,
 * password change, OAuth revocation), on whichever node it was revoked.
 */
export class EventsService {
  readonly history: EventHistory;
  readonly #listeners = new Map<string, Set<ResumedFeed>>();
  readonly #streams = new Set<SseStream>();
  /** The open streams by token, to end those of a revoked token. */
  readonly #live = new LiveSessions();
  readonly #unsubscribe: Array<() => void>;

  constructor(private readonly o: EventsServiceOptions) {
    this.history = o.history;
    this.#unsubscribe = [
      o.bus.subscribe('devices/+/events', (topic, payload, messageId) => this.#publish(topic, 'notification', payload, messageId)),
      o.bus.subscribe('devices/+/status', (topic, payload, messageId) => this.#publish(topic, 'status', payload, messageId)),
      o.auth.onRevoked((ended) => this.#live.end(ended)),
    ];
  }

  handles(url: string): boolean {
    return ALL_EVENTS.test(url) || DEVICE_EVENTS.test(url);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const token = bearerToken(req, true);
    const session = token ? await this.o.auth.session(token) : undefined;
    if (!session) return sendError(res, 'CR_ERR_UNAUTHORIZED', undefined, { 'www-authenticate': 'Bearer' });
    if (!allows(session, 'events:read')) {
      return sendError(res, 'CR_ERR_INSUFFICIENT_SCOPE', 'this request needs the events:read scope', { 'www-authenticate': 'Bearer error="insufficient_scope", scope="events:read"' });
    }
    let deviceIds: string[];
    const m = DEVICE_EVENTS.exec(url);
    if (m) {
      let id: string;
      try {
        id = decodeURIComponent(m[1]!);
      } catch {
        return sendError(res, 'CR_ERR_BAD_REQUEST', 'bad device id');
      }
      if (!(await this.o.auth.ownedDevice(session.user, id))) return sendError(res, 'CR_ERR_DEVICE_NOT_FOUND');
      deviceIds = [id];
    } else {
      deviceIds = (await this.o.auth.devicesOf(session.user)).map((d) => d.id);
    }
    let lastId: number | undefined;
    try {
      lastId = parseLastEventId(req);
    } catch (err) {
      return sendError(res, (err as HubError).code, (err as HubError).message);
    }
    // Read before the stream opens, so what follows up to the listeners' registration stays synchronous
    // (no status event can slip in between; with a scaled Presence the window is its one round trip).
    const where = await this.o.presence.getMany(deviceIds);
    const slot = this.o.slots.acquire(session.user.id);
    if (typeof slot !== 'function') return sendError(res, slot.code, slot.message, { 'retry-after': String(STREAM_RETRY_AFTER_S) });

    const sse = openSse(req, res, { heartbeatMs: this.o.heartbeatMs, maxBufferedBytes: this.o.maxBufferedBytes ?? 1024 * 1024, retryMs: 2000 });
    this.#streams.add(sse);
    this.o.metrics.sseClients.inc();
    const release = this.#live.hold(session, () => sse.close());
    // The current state first, without an id, so it never disturbs resumption.
    for (let i = 0; i < deviceIds.length; i++) {
      sse.send({ event: 'status', data: JSON.stringify({ deviceId: deviceIds[i], online: where[i] !== undefined, snapshot: true }) });
    }
    const replay = lastId === undefined ? undefined : this.history.since(deviceIds, lastId);
    // A shared history answers later: live events meanwhile are held, so none is lost or overtakes the replay.
    const feed = new ResumedFeed(sse, replay instanceof Promise);
    if (replay !== undefined && !(replay instanceof Promise)) feed.replayed(lastId!, replay);
    for (const id of deviceIds) {
      let set = this.#listeners.get(id);
      if (!set) this.#listeners.set(id, (set = new Set()));
      set.add(feed);
    }
    sse.onClose(() => {
      release();
      slot();
      this.#streams.delete(sse);
      this.o.metrics.sseClients.dec();
      for (const id of deviceIds) {
        const set = this.#listeners.get(id);
        set?.delete(feed);
        if (set?.size === 0) this.#listeners.delete(id);
      }
    });
    if (replay instanceof Promise) {
      let replayed: SinceResult;
      try {
        replayed = await replay;
      } catch {
        // The history is unreachable: say so, as for events that fell out of it, and carry on live.
        replayed = { events: [], complete: false };
      }
      feed.replayed(lastId!, replayed);
    }
    // A revocation while the stream was being set up came before it was held: ask once more.
    if (!(await this.o.auth.stillValid(token!))) sse.close();
  }

  #publish(topic: string, type: 'notification' | 'status', payload: Buffer, messageId: Buffer | undefined): void {
    const deviceId = topic.slice('devices/'.length, topic.lastIndexOf('/'));
    const data = type === 'status' ? withDevice(deviceId, payload) : payload.toString('utf8');
    const e = this.history.append(deviceId, type, data, messageId);
    if (!(e instanceof Promise)) return this.#deliver(deviceId, toSse(e));
    // Appends settle in the order they were made (one connection), so streams keep the bus's order. An
    // event the history could not take still goes out live, without an id to resume from.
    e.then(
      (event) => this.#deliver(deviceId, toSse(event)),
      () => this.#deliver(deviceId, { event: type, data: toSse({ id: 0, deviceId, type, data }).data }),
    );
  }

  #deliver(deviceId: string, ev: LiveEvent): void {
    const set = this.#listeners.get(deviceId);
    if (!set) return;
    for (const feed of set) feed.live(ev);
  }

  closeAll(): void {
    for (const u of this.#unsubscribe) u();
    for (const s of [...this.#streams]) s.close();
  }
}

function withDevice(deviceId: string, payload: Buffer): string {
  const status = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
  return JSON.stringify({ deviceId, ...status });
}
