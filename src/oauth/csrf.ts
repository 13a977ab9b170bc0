/**
 * CSRF protection of the consent form (RFC 6749 §10.12).
 *
 * The page sets a random cookie (SameSite=Strict, HttpOnly) and puts in the form a token that is an
 * HMAC over that cookie, the time, and every field of the authorization request. The POST must bring
 * both: another site can neither read the cookie nor forge the HMAC, and a form whose hidden fields
 * were altered (another state, redirect URI or scope) no longer matches. The key lives in memory, so
 * a form loaded before a hub restart has to be loaded again.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const CSRF_COOKIE = 'cr_oauth_csrf';
/** How long a loaded consent form stays usable. */
export const CONSENT_FORM_TTL_MS = 15 * 60_000;
const MAX_TOKEN_CHARS = 128;

export class ConsentCsrf {
  readonly #key = randomBytes(32);

  newCookie(): string {
    return randomBytes(32).toString('base64url');
  }

  token(cookie: string, fields: readonly string[], now = Date.now()): string {
    const issued = Math.floor(now / 1000).toString(36);
    return `${issued}.${this.#mac(cookie, fields, issued)}`;
  }

  verify(cookie: string | undefined, fields: readonly string[], token: string | undefined, now = Date.now()): boolean {
    if (!cookie || !token || token.length > MAX_TOKEN_CHARS || cookie.length > MAX_TOKEN_CHARS) return false;
    const dot = token.indexOf('.');
    if (dot <= 0) return false;
    const issued = token.slice(0, dot);
    const seconds = parseInt(issued, 36);
    if (!/^[0-9a-z]{1,10}$/.test(issued) || !(now - seconds * 1000 <= CONSENT_FORM_TTL_MS && seconds * 1000 <= now + 60_000)) return false;
    const expected = Buffer.from(this.#mac(cookie, fields, issued));
    const given = Buffer.from(token.slice(dot + 1));
    return expected.length === given.length && timingSafeEqual(expected, given);
  }

  #mac(cookie: string, fields: readonly string[], issued: string): string {
    return createHmac('sha256', this.#key).update(JSON.stringify([cookie, issued, ...fields])).digest('base64url');
  }
}

/** The value of cookie `name` in a Cookie header, if present. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header || header.length > 8192) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
