/**
 * A Lua script run by its SHA1 (EVALSHA) once the server has it: the scripts here run on hot paths, so
 * their text is not resent with every call. The first call on a connection, and the first after each
 * reconnect (a restarted Redis has forgotten its scripts), sends the text (EVAL, which also caches it),
 * so calls stay in the order they were made: a NOSCRIPT answer and a resend would let later commands
 * overtake this one. A NOSCRIPT all the same (SCRIPT FLUSH) is answered by sending the text.
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
    const known = scriptsKnownTo(redis);
    if (!known.has(this.#sha)) {
      known.add(this.#sha);
      try {
        return await call('EVAL', this.#lua);
      } catch (err) {
        known.delete(this.#sha);
        throw err;
      }
    }
    try {
      return await call('EVALSHA', this.#sha);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return call('EVAL', this.#lua);
    }
  }
}

const known = new WeakMap<Redis, Set<string>>();

/** The scripts sent on this connection since it last connected. */
function scriptsKnownTo(redis: Redis): Set<string> {
  let set = known.get(redis);
  if (set === undefined) {
    const fresh = new Set<string>();
    redis.on('connect', () => fresh.clear());
    known.set(redis, (set = fresh));
  }
  return set;
}
