/** Email addresses as devices report them and as people type them. */
import { MAX_EMAIL_CHARS } from '../core/device-fields.js';

/**
 * The WHATWG HTML "valid email address" production (HTML §4.10.5.1.5): what a browser's
 * <input type=email> accepts. Deliberately narrower than RFC 5322 (no quoted local parts, comments or
 * whitespace), which also keeps anything header-like out of a mail's To: line.
 */
const VALID_EMAIL = /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/** The email lower-cased and trimmed if it is a valid address, else undefined. */
export function normalizedEmail(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const email = value.trim().toLowerCase();
  return email.length <= MAX_EMAIL_CHARS && VALID_EMAIL.test(email) ? email : undefined;
}

/** A device-supplied label made safe to quote in a mail: one line, no control characters, bounded. */
export function displayName(value: unknown, fallback: string, maxChars = 64): string {
  if (typeof value !== 'string') return fallback;
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();
  if (clean === '') return fallback;
  return clean.length > maxChars ? `${clean.slice(0, maxChars - 1)}…` : clean;
}
