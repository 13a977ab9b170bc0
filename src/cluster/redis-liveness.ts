/**
 * When this node last heard from Redis: a PING every `probeMs` (each bounded by the connection's
 * command timeout), so that a node cut off from Redis knows how long it has been alone even when
 * nothing else talks to Redis, and even when the link drops packets instead of closing.
 */
import type { Redis } from 'ioredis';

export class RedisLiveness {
  readonly #redis: Redis;
  #lastContactAt: number;
  #timer: NodeJS.Timeout | undefined;
  #probing = false;

  constructor(redis: Redis, readonly probeMs: number) {
    this.#redis = redis;
    this.#lastContactAt = Date.now();
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.#probe(), this.probeMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Milliseconds since Redis last answered (ms since epoch of the answer: `lastContactAt`). */
  silentForMs(now = Date.now()): number {
    return now - this.#lastContactAt;
  }

  get lastContactAt(): number {
    return this.#lastContactAt;
  }

  async #probe(): Promise<void> {
    if (this.#probing) return;
    this.#probing = true;
    try {
      await this.#redis.ping();
      this.#lastContactAt = Date.now();
    } catch {
      // Not heard from: silentForMs grows.
    } finally {
      this.#probing = false;
    }
  }
}
