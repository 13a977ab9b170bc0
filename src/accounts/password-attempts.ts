/**
 * The two limits of a password check (login, password change, device authentication, OAuth consent):
 * per account (the email, whether or not it exists, so the answer says nothing about which do) and per
 * client address (IPv6 by /64). Both are core/failure-limiter.ts windows.
 */
import { FailureLimiter, addressKey } from '../core/failure-limiter.js';

export class PasswordAttempts {
  readonly #accounts: FailureLimiter;
  readonly #addresses: FailureLimiter;

  constructor(opts: { maxFailures: number; maxFailuresPerAddress: number; windowMs: number; maxKeys?: number }) {
    const maxKeys = opts.maxKeys ?? 100_000;
    this.#accounts = new FailureLimiter({ maxFailures: opts.maxFailures, windowMs: opts.windowMs, maxKeys });
    this.#addresses = new FailureLimiter({ maxFailures: opts.maxFailuresPerAddress, windowMs: opts.windowMs, maxKeys });
  }

  /** 0 to go ahead, else the ms to wait. */
  retryAfterMs(account: string, address: string): number {
    return Math.max(this.#accounts.retryAfterMs(account), this.#addresses.retryAfterMs(addressKey(address)));
  }

  failed(account: string, address: string): void {
    this.#accounts.failed(account);
    this.#addresses.failed(addressKey(address));
  }

  /** A correct password clears the account's failures (not the address's: it may be trying many accounts). */
  succeeded(account: string): void {
    this.#accounts.succeeded(account);
  }
}
