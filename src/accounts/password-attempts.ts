/**
 * The two limits of a password check (login, password change, device authentication, OAuth consent):
 * per account (the email, whether or not it exists, so the answer says nothing about which do) and per
 * client address (IPv6 by /64). Both are core/failure-limiter.ts windows, and a check reserves its
 * attempt in both before the password is hashed, so concurrent guesses cannot outrun either limit.
 */
import { FailureLimiter, addressKey, type Attempt, type AttemptLimiter, type NamedLimiterOptions, type Reservation } from '../core/failure-limiter.js';

export class PasswordAttempts {
  readonly #accounts: AttemptLimiter;
  readonly #addresses: AttemptLimiter;

  /** `limiter` makes each of the two limits (the hub's backends pick it); in-process FailureLimiters by default. */
  constructor(
    opts: { maxFailures: number; maxFailuresPerAddress: number; windowMs: number; maxKeys?: number; now?: () => number },
    limiter: (o: NamedLimiterOptions) => AttemptLimiter = (o) => new FailureLimiter(o),
  ) {
    const maxKeys = opts.maxKeys ?? 100_000;
    this.#accounts = limiter({ name: 'password-account', maxFailures: opts.maxFailures, windowMs: opts.windowMs, maxKeys, now: opts.now });
    this.#addresses = limiter({ name: 'password-address', maxFailures: opts.maxFailuresPerAddress, windowMs: opts.windowMs, maxKeys, now: opts.now });
  }

  /**
   * Reserves a password check for this account from this address, or refuses it with the ms to wait.
   * Settle the attempt: `failed()` counts against both; `succeeded()` clears the account's failures
   * but not the address's (it may be trying many accounts), whose reservation is given back;
   * `release()` (nothing was checked) gives both back. Synchronous when both limits are (in process).
   */
  reserve(account: string, address: string): Reservation | Promise<Reservation> {
    const a = this.#accounts.reserve(account);
    return a instanceof Promise ? a.then((r) => this.#andAddress(r, address)) : this.#andAddress(a, address);
  }

  #andAddress(a: Reservation, address: string): Reservation | Promise<Reservation> {
    if (a.attempt === undefined) return a;
    const forAccount = a.attempt;
    let b: Reservation | Promise<Reservation>;
    try {
      b = this.#addresses.reserve(addressKey(address));
    } catch (err) {
      forAccount.release();
      throw err;
    }
    if (b instanceof Promise) {
      return b.then(
        (r) => both(forAccount, r),
        (err: unknown) => {
          forAccount.release();
          throw err;
        },
      );
    }
    return both(forAccount, b);
  }
}

function both(forAccount: Attempt, b: Reservation): Reservation {
  if (b.attempt === undefined) {
    forAccount.release();
    return b;
  }
  const forAddress: Attempt = b.attempt;
  return {
    retryAfterMs: 0,
    attempt: {
      failed: () => {
        forAccount.failed();
        forAddress.failed();
      },
      succeeded: () => {
        forAccount.succeeded();
        forAddress.release();
      },
      release: () => {
        forAccount.release();
        forAddress.release();
      },
    },
  };
}
