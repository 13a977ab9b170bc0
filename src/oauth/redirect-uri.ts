/**
 * Redirect URIs: which may be registered, and how the authorization response is added to one.
 *
 * Matching is by exact string comparison (RFC 9700 §4.1.3): no wildcards, no prefix matching, no
 * port flexibility, so an open redirector on the client's site cannot receive a code.
 */
export const MAX_REDIRECT_URI_CHARS = 2000;
export const MAX_REDIRECT_URIS = 10;

const LOOPBACK = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** Why `uri` cannot be registered, or undefined if it can. */
export function redirectUriProblem(uri: string): string | undefined {
  if (uri.length > MAX_REDIRECT_URI_CHARS) return `longer than ${MAX_REDIRECT_URI_CHARS} characters`;
  if (/[\s\p{Cc}]/u.test(uri)) return 'contains spaces or control characters';
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return 'not an absolute URI';
  }
  // RFC 6749 §3.1.2: absolute, and MUST NOT include a fragment component.
  if (uri.includes('#')) return 'has a fragment (#...)';
  if (u.username !== '' || u.password !== '') return 'has user information';
  if (u.protocol === 'https:') return u.hostname === '' ? 'has no host' : undefined;
  if (u.protocol === 'http:') {
    // RFC 8252 §7.3: plain http only to the loopback interface (a native app's local listener).
    return LOOPBACK.has(u.hostname) ? undefined : 'http is allowed only for 127.0.0.1, [::1] or localhost; use https';
  }
  // RFC 8252 §7.1: a native app's private-use scheme is a reverse domain name (com.example.app:/cb).
  const scheme = u.protocol.slice(0, -1);
  if (/^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+$/.test(scheme)) return undefined;
  return `scheme ${scheme}: is not allowed (https, loopback http, or a reverse-domain private-use scheme)`;
}

/**
 * The redirect URI with the response parameters added to its query, keeping the query it already
 * has (RFC 6749 §3.1.2); undefined values are left out.
 */
export function withParams(uri: string, params: Record<string, string | undefined>): string {
  const u = new URL(uri);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.append(k, v);
  return u.href;
}
