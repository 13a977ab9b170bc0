/**
 * The Bus between nodes, over Redis pub/sub. Each distinct filter becomes one Redis subscription:
 * a filter without wildcards a SUBSCRIBE to its channel, any other a PSUBSCRIBE whose glob is a
 * superset of the filter (`+` and a trailing `/#` become `*`, which also crosses `/`); the exact MQTT
 * match is done here, per subscription, in a small topic tree. So a node receives only what some filter
 * of its own may want, and each subscription is called once per message even when several Redis
 * subscriptions of this connection match it: a message is delivered to the subscriptions of the
 * Redis channel or pattern it arrived on, and no other.
 *
 * On the wire a message is a 12-byte header (this bus instance's random id and a publish counter:
 * the handlers' `messageId`) followed by the payload bytes.
 *
 * Publishes go through Redis, so handlers on this node get this node's messages too, in publish order
 * (one command connection), as with LocalBus. Messages published while a node is cut off from Redis
 * are lost to it (Redis pub/sub keeps nothing); the subscriptions come back by themselves on reconnect.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Bus, BusHandler } from '../core/bus.js';
import type { BusErrorHandler } from '../core/local-bus.js';
import { TopicTree, validateTopicFilter, validateTopicName } from '../core/topic-tree.js';
import { duplicateRedis } from './redis-connection.js';

const HEADER_BYTES = 12;

interface Subscription {
  readonly handler: BusHandler;
  active: boolean;
}

/** The local subscriptions behind one Redis channel or pattern. */
interface Group {
  readonly pattern: boolean;
  readonly tree: TopicTree<Subscription>;
}

export interface RedisBusOptions {
  /** The command connection (shared with the other Redis parts); publishes go on it. */
  redis: Redis;
  /** Put before every channel name (`config.redisKeyPrefix`). */
  keyPrefix: string;
  /** A handler threw. */
  onError: BusErrorHandler;
  /** A publish did not reach Redis (it is lost: pub/sub keeps nothing); `onError` when not given. */
  onPublishError?: BusErrorHandler;
}

export class RedisBus implements Bus {
  readonly #redis: Redis;
  /** Pub/sub needs a connection of its own: a subscribed connection takes no other commands. */
  readonly #subscriber: Redis;
  readonly #prefix: string;
  readonly #prefixBytes: number;
  readonly #onError: BusErrorHandler;
  readonly #onPublishError: BusErrorHandler;
  /** Keyed by the Redis channel or glob pattern, as Redis names it in the messages it sends. */
  readonly #groups = new Map<string, Group>();
  #closed = false;
  /** The message header: instance id (8 bytes) and publish counter (4 bytes, wrapping). */
  readonly #instance = randomBytes(8);
  #published = 0;

  private constructor(options: RedisBusOptions) {
    this.#redis = options.redis;
    this.#prefix = options.keyPrefix;
    this.#prefixBytes = Buffer.byteLength(options.keyPrefix);
    this.#onError = options.onError;
    this.#onPublishError = options.onPublishError ?? options.onError;
    const sub = duplicateRedis(options.redis, 'cloudrest-bus');
    // Re-subscribed by us on every 'ready', from #groups, so what Redis has always follows what is wanted.
    sub.options.autoResubscribe = false;
    sub.on('messageBuffer', (channel: Buffer, payload: Buffer) => this.#arrived(channel.toString(), channel, payload));
    sub.on('pmessageBuffer', (pattern: Buffer, channel: Buffer, payload: Buffer) => this.#arrived(pattern.toString(), channel, payload));
    sub.on('ready', () => this.#resubscribe());
    this.#subscriber = sub;
  }

  /** A bus whose subscriber connection is up. */
  static async open(options: RedisBusOptions): Promise<RedisBus> {
    const bus = new RedisBus(options);
    await bus.#subscriber.connect();
    return bus;
  }

  publish(topic: string, payload: Buffer): void {
    const problem = validateTopicName(topic);
    if (problem !== null) throw new TypeError(`invalid topic ${JSON.stringify(topic)}: ${problem}`);
    if (this.#closed) return;
    this.#redis.publish(this.#prefix + topic, this.#frame(payload)).catch((err: unknown) => this.#onPublishError(err, topic));
  }

  /**
   * Publishes and waits for Redis: resolves with how many bus connections (one per node subscribed to
   * `topic` exactly) received it; rejects when Redis is away. For a one-shot publisher such as the CLI.
   */
  async publishCounted(topic: string, payload: Buffer): Promise<number> {
    const problem = validateTopicName(topic);
    if (problem !== null) throw new TypeError(`invalid topic ${JSON.stringify(topic)}: ${problem}`);
    if (this.#closed) throw new Error('the bus is closed');
    return this.#redis.publish(this.#prefix + topic, this.#frame(payload));
  }

  subscribe(filter: string, handler: BusHandler): () => void {
    if (this.#closed) throw new Error('the bus is closed');
    const problem = validateTopicFilter(filter);
    if (problem !== null) throw new TypeError(`invalid topic filter ${JSON.stringify(filter)}: ${problem}`);
    const { key, pattern } = this.#redisName(filter);
    let group = this.#groups.get(key);
    if (group === undefined) {
      group = { pattern, tree: new TopicTree() };
      this.#groups.set(key, group);
      this.#send(pattern ? 'psubscribe' : 'subscribe', key);
    }
    const sub: Subscription = { handler, active: true };
    group.tree.add(filter, sub);
    return () => {
      if (!sub.active) return;
      sub.active = false;
      const g = this.#groups.get(key);
      if (g === undefined) return;
      g.tree.remove(filter, sub);
      if (g.tree.size === 0 && !this.#closed) {
        this.#groups.delete(key);
        this.#send(pattern ? 'punsubscribe' : 'unsubscribe', key);
      }
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#groups.clear();
    await this.#subscriber.quit().catch(() => this.#subscriber.disconnect());
  }

  #frame(payload: Buffer): Buffer {
    const message = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
    this.#instance.copy(message, 0);
    message.writeUInt32BE((this.#published = (this.#published + 1) >>> 0), 8);
    payload.copy(message, HEADER_BYTES);
    return message;
  }

  /** Redis channels and patterns subscribed; for metrics and tests. */
  get redisSubscriptionCount(): number {
    return this.#groups.size;
  }

  /** The Redis channel (no wildcard) or glob pattern that receives at least every topic `filter` matches. */
  #redisName(filter: string): { key: string; pattern: boolean } {
    if (!filter.includes('+') && !filter.includes('#')) return { key: this.#prefix + filter, pattern: false };
    const levels = filter.split('/');
    let glob = '';
    for (let i = 0; i < levels.length; i++) {
      const level = levels[i]!;
      if (level === '#') {
        // `a/#` also matches `a` itself ([MQTT-4.7.1-2]): drop the slash, `*` covers "" and "/…".
        glob += '*';
        break;
      }
      if (i > 0) glob += '/';
      glob += level === '+' ? '*' : escapeGlob(level);
    }
    return { key: escapeGlob(this.#prefix) + glob, pattern: true };
  }

  #arrived(key: string, channel: Buffer, message: Buffer): void {
    const group = this.#groups.get(key);
    if (group === undefined || this.#closed) return;
    const topic = channel.toString('utf8', this.#prefixBytes);
    // Not from a RedisBus (something else published on our prefix): nothing to deliver.
    if (message.length < HEADER_BYTES) return this.#report(new Error('a message without the bus header'), topic);
    const messageId = message.subarray(0, HEADER_BYTES);
    const payload = message.subarray(HEADER_BYTES);
    // A snapshot, as in LocalBus: handlers may (un)subscribe during the delivery.
    for (const sub of group.tree.match(topic)) {
      if (!sub.active || this.#closed) continue;
      try {
        sub.handler(topic, payload, messageId);
      } catch (err) {
        this.#report(err, topic);
      }
    }
  }

  #send(command: 'subscribe' | 'psubscribe' | 'unsubscribe' | 'punsubscribe', key: string): void {
    // While disconnected this fails at once; the 'ready' after the reconnect subscribes #groups afresh.
    if (this.#subscriber.status !== 'ready') return;
    this.#subscriber[command](key).catch(() => undefined);
  }

  #resubscribe(): void {
    const channels: string[] = [];
    const patterns: string[] = [];
    for (const [key, group] of this.#groups) (group.pattern ? patterns : channels).push(key);
    if (channels.length > 0) this.#subscriber.subscribe(...channels).catch(() => undefined);
    if (patterns.length > 0) this.#subscriber.psubscribe(...patterns).catch(() => undefined);
  }

  #report(err: unknown, topic: string): void {
    try {
      this.#onError(err, topic);
    } catch {
      // An onError that throws must not break delivery either.
    }
  }
}

/** `s` with Redis glob's special characters taken literally. */
function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\^]/g, '\\$&');
}
