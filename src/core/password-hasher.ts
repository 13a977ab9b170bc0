/**
 * Every password hash the hub computes for a request (login, password change, OAuth consent,
 * confirmation), bounded hub-wide: scrypt runs on libuv's thread pool (4 threads by default) and costs
 * tens of milliseconds of CPU each, so an unbounded burst of them holds every other login behind it
 * (issue 12: a correct login took 41 s behind 1,500 wrong ones). At most `maxConcurrent` run at once;
 * more wait briefly, each client address in turn (core/fair-semaphore.ts), and past the queue's
 * bound or wait the caller gets BusyError, answered as 429 CR_ERR_BUSY with Retry-After.
 */
import { FairSemaphore } from './fair-semaphore.js';
import { addressKey } from './failure-limiter.js';
import { hashPassword, verifyPassword } from './secrets.js';

export interface PasswordHasherOptions {
  /** Hashes running at once, hub-wide. */
  maxConcurrent: number;
  /** Hashes waiting at once, hub-wide (one client address may hold a quarter of them). */
  maxQueued: number;
  /** Longest a hash waits for its turn. */
  maxWaitMs: number;
}

/** What a hub without explicit options uses; the hub options (src/config/hub-options.ts) have the same. */
export const PASSWORD_HASHER_DEFAULTS: PasswordHasherOptions = { maxConcurrent: 4, maxQueued: 128, maxWaitMs: 5000 };

export class PasswordHasher {
  readonly #slots: FairSemaphore;

  constructor(opts: PasswordHasherOptions = PASSWORD_HASHER_DEFAULTS) {
    this.#slots = new FairSemaphore(opts);
  }

  /** True when `password` matches `stored`. Waits its turn among client addresses (IPv6 by /64); throws BusyError. */
  verify(password: string, stored: string, clientAddress: string): Promise<boolean> {
    return this.#slots.run(addressKey(clientAddress), () => verifyPassword(password, stored));
  }

  /** A new hash of `password`, as secrets.ts hashPassword makes it. Waits its turn like verify; throws BusyError. */
  hash(password: string, clientAddress: string): Promise<string> {
    return this.#slots.run(addressKey(clientAddress), () => hashPassword(password));
  }

  /** Hashes running now. */
  get running(): number {
    return this.#slots.running;
  }

  /** Hashes waiting now. */
  get queued(): number {
    return this.#slots.queued;
  }
}
