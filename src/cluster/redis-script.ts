/**
 * A Lua script run by its SHA1 (EVALSHA), sent in full only when the server does not know it yet
 * (after a restart or SCRIPT FLUSH): the scripts here run on hot paths, so their text is not resent
 * with every call.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

type Arg = string | Buffer | number;

export class RedisScript {
  readonly #lua: string;
  readonly #sha: string;
  readonly #keys: number;

  constructor(lua: string, keys: number) {
    this.#lua = lua;
    this.#sha = createHash('sha1').update(lua).digest('hex');
    this.#keys = keys;
  }

  /** Runs the script; replies as strings. */
  run(redis: Redis, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    return this.#exec(redis, false, keys, args);
  }

  /** Runs the script; replies as Buffers (binary values). */
  runBuffer(redis: Redis, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    return this.#exec(redis, true, keys, args);
  }

  async #exec(redis: Redis, buffers: boolean, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    if (keys.length !== this.#keys) throw new TypeError(`the script takes ${this.#keys} keys, not ${keys.length}`);
    const call = (command: string, head: string) => (buffers ? redis.callBuffer(command, head, this.#keys, ...keys, ...args) : redis.call(command, head, this.#keys, ...keys, ...args));
    try {
      return await call('EVALSHA', this.#sha);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return call('EVAL', this.#lua);
    }
  }
}
