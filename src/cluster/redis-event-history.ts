/**
 * The SSE event history shared by the nodes, so a client resumes with Last-Event-ID on any front and
 * every front gives an event the same id.
 *
 * Ids come from one counter (`history:seq`), started, as MemoryEventHistory's, at the wall clock times
 * 1000: a Redis that lost it (restarted, flushed) starts again above the ids issued before, and
 * `history:origin` marks where this history begins, so older cursors are answered "incomplete". Each
 * device's events are a sorted set by id (`history:d:<device>`), capped at `eventHistory`; when older
 * events go, a member `lost` with the newest dropped id stays behind, so one range read answers both
 * "what came after this id" and "is any of it gone".
 *
 * Every node receives each bus event and appends it; the bus's message id (`history:m:<id>`, kept a
 * minute) makes the first append record it and the others get its id back.
 *
 * Memory: `eventHistory` events per device that sent any, kept until the device is forgotten; the
 * keys have no TTL, so a `volatile-*` maxmemory policy never evicts them (docs/scale-out.md "Redis").
 */
import type { Redis } from 'ioredis';
import { DEFAULT_EVENT_HISTORY, type EventHistory, type EventHistoryOptions, type HistoryEvent, type HistoryEventType, type SinceResult } from '../http/event-history.js';
import { redisCall } from './redis-connection.js';
import { RedisScript } from './redis-script.js';

/** How long a bus message id is remembered: longer than any node takes to receive the message. */
const MESSAGE_ID_TTL_MS = 60_000;
const LOST = 'lost';
const TYPE_CODES: Record<HistoryEventType, string> = { notification: 'n', status: 's' };

/** KEYS: seq, origin. ARGV: now (ms). Starts the counter if it is missing; returns it. */
const START = `
local c = redis.call('GET', KEYS[1])
if c then return c end
local s = string.format('%.0f', math.floor(tonumber(ARGV[1])) * 1000 - 1)
redis.call('SET', KEYS[1], s)
redis.call('SET', KEYS[2], s)
return s`;

const INIT = new RedisScript(START, 2);

/**
 * KEYS: seq, origin, device set, message id key ('' when none). ARGV: now, cap, "<type>:<data>".
 * Returns the event's id (the one already given when the message id is known).
 */
const APPEND = new RedisScript(`
if KEYS[4] ~= '' then
  local known = redis.call('GET', KEYS[4])
  if known then return known end
end
local c = redis.call('GET', KEYS[1])
local id
if c then id = tonumber(c) + 1 else
  id = math.floor(tonumber(ARGV[1])) * 1000
  redis.call('SET', KEYS[2], string.format('%.0f', id - 1))
end
local s = string.format('%.0f', id)
redis.call('SET', KEYS[1], s)
local cap = tonumber(ARGV[2])
redis.call('ZADD', KEYS[3], id, s .. ':' .. ARGV[3])
local first = redis.call('ZSCORE', KEYS[3], '${LOST}') and 1 or 0
local over = redis.call('ZCARD', KEYS[3]) - first - cap
if over > 0 then
  local gone = redis.call('ZRANGE', KEYS[3], first, first + over - 1, 'WITHSCORES')
  redis.call('ZREMRANGEBYRANK', KEYS[3], first, first + over - 1)
  redis.call('ZADD', KEYS[3], gone[#gone], '${LOST}')
end
if KEYS[4] ~= '' then redis.call('SET', KEYS[4], s, 'PX', ${MESSAGE_ID_TTL_MS}) end
return s`, 4);

export interface RedisEventHistoryOptions extends EventHistoryOptions {
  redis: Redis;
  keyPrefix: string;
}

export class RedisEventHistory implements EventHistory {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #perDevice: number;
  readonly #now: () => number;
  #lastId: number;

  private constructor(options: RedisEventHistoryOptions, lastId: number) {
    this.#redis = options.redis;
    this.#prefix = `${options.keyPrefix}history:`;
    this.#perDevice = options.eventHistory ?? DEFAULT_EVENT_HISTORY;
    this.#now = options.now ?? Date.now;
    this.#lastId = lastId;
  }

  /** The history, its counter started if this is the first node. */
  static async open(options: RedisEventHistoryOptions): Promise<RedisEventHistory> {
    const perDevice = options.eventHistory ?? DEFAULT_EVENT_HISTORY;
    if (!Number.isInteger(perDevice) || perDevice < 0) throw new RangeError('eventHistory must be an integer >= 0');
    const prefix = `${options.keyPrefix}history:`;
    const seq = await redisCall(INIT.run(options.redis, [`${prefix}seq`, `${prefix}origin`], [(options.now ?? Date.now)()]));
    return new RedisEventHistory(options, Number(seq));
  }

  get lastId(): number {
    return this.#lastId;
  }

  async append(deviceId: string, type: HistoryEventType, data: string, messageId?: Buffer): Promise<HistoryEvent> {
    const keys = [this.#key('seq'), this.#key('origin'), this.#deviceKey(deviceId), messageId === undefined ? '' : this.#key(`m:${messageId.toString('hex')}`)];
    const id = Number(await redisCall(APPEND.run(this.#redis, keys, [this.#now(), this.#perDevice, `${TYPE_CODES[type]}:${data}`])));
    if (id > this.#lastId) this.#lastId = id;
    return Object.freeze({ id, deviceId, type, data });
  }

  async since(deviceIds: Iterable<string>, lastId: number): Promise<SinceResult> {
    const devices = [...new Set(deviceIds)];
    let read = await this.#read(devices, `(${lastId}`);
    const unknown = lastId > read.seq;
    // An id above any issued here (another history's, or a clock that went back): all that is held.
    if (unknown) read = await this.#read(devices, '-inf');
    let complete = !unknown && lastId >= read.origin;
    const events: HistoryEvent[] = [];
    devices.forEach((deviceId, i) => {
      for (const member of read.ranges[i]!) {
        if (member === LOST) {
          complete = false;
          continue;
        }
        events.push(parseMember(deviceId, member));
      }
    });
    if (devices.length > 1) events.sort((a, b) => a.id - b.id);
    if (read.seq > this.#lastId) this.#lastId = read.seq;
    return { events, complete };
  }

  async forget(deviceId: string): Promise<void> {
    await redisCall(this.#redis.del(this.#deviceKey(deviceId)));
  }

  /** One round trip: the counter, the origin and each device's members in (min, +inf). */
  async #read(devices: readonly string[], min: string): Promise<{ seq: number; origin: number; ranges: string[][] }> {
    const batch = this.#redis.pipeline().get(this.#key('seq')).get(this.#key('origin'));
    for (const d of devices) batch.zrangebyscore(this.#deviceKey(d), min, '+inf');
    const replies = await redisCall(batch.exec());
    const values = (replies ?? []).map(([err, value]) => {
      if (err) throw err;
      return value;
    });
    // A Redis that lost the counter has lost the events too: nothing held, and everything older is gone.
    const seq = values[0] === null ? Number.MAX_SAFE_INTEGER : Number(values[0]);
    const origin = values[1] === null ? Number.MAX_SAFE_INTEGER : Number(values[1]);
    return { seq, origin, ranges: values.slice(2) as string[][] };
  }

  #key(name: string): string {
    return this.#prefix + name;
  }

  #deviceKey(deviceId: string): string {
    return `${this.#prefix}d:${deviceId}`;
  }
}

/** `<id>:<type code>:<data>` back into the event. */
function parseMember(deviceId: string, member: string): HistoryEvent {
  const colon = member.indexOf(':');
  const id = Number(member.slice(0, colon));
  const type: HistoryEventType = member[colon + 1] === 's' ? 'status' : 'notification';
  return Object.freeze({ id, deviceId, type, data: member.slice(colon + 3) });
}
