/**
 * One password check under the failed-password limits, as every route that takes a password runs it
 * (POST /v1/auth, POST /v1/auth/password, the OAuth consent form): the attempt is reserved before the
 * hash, settled by its outcome, and given back when nothing was checked (the hub was too busy to hash,
 * or an error), so the limits hold however many checks run at once.
 */
import { BusyError } from '../core/fair-semaphore.js';
import type { PasswordAttempts } from './password-attempts.js';

export type PasswordCheck<T> =
  | { status: 'ok'; value: T }
  | { status: 'wrong' }
  /** Refused unchecked: too many failures (CR_ERR_RATE_LIMITED) or too many hashes at once (CR_ERR_BUSY). */
  | { status: 'refused'; code: 'CR_ERR_RATE_LIMITED' | 'CR_ERR_BUSY'; retryAfterMs: number };

/**
 * Runs `check` (which hashes; undefined when the password is wrong) under the limits of `account`
 * from `address`; without `attempts` (a hub without accounts), under no limit but the hasher's.
 */
export async function checkPassword<T>(
  attempts: PasswordAttempts | undefined,
  account: string,
  address: string,
  check: () => Promise<T | undefined>,
): Promise<PasswordCheck<T>> {
  const r = await attempts?.reserve(account, address);
  if (r !== undefined && r.attempt === undefined) return { status: 'refused', code: 'CR_ERR_RATE_LIMITED', retryAfterMs: r.retryAfterMs };
  const attempt = r?.attempt;
  try {
    const value = await check();
    if (value === undefined) {
      attempt?.failed();
      return { status: 'wrong' };
    }
    attempt?.succeeded();
    return { status: 'ok', value };
  } catch (err) {
    if (err instanceof BusyError) return { status: 'refused', code: 'CR_ERR_BUSY', retryAfterMs: err.retryAfterMs };
    throw err;
  } finally {
    attempt?.release(); // does nothing once settled above
  }
}
