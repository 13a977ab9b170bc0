/**
 * Who is calling the token, introspection and revocation endpoints (RFC 6749 §2.3).
 *
 * A confidential client authenticates with its secret, either by HTTP Basic (client_secret_basic) or
 * in the body (client_secret_post), never both (§2.3: one method per request). A public client only
 * names itself with client_id; it has no secret to prove anything with, so what it may do rests on the
 * code verifier (PKCE) or on holding the token it presents.
 */
import { sha256Hex, safeEqualHex } from '../core/secrets.js';
import type { OAuthClientRecord, Store } from '../store/store.js';
import { OAuthError } from './oauth-error.js';
import type { Params } from './params.js';
import { MAX_SECRET_CHARS } from './secrets.js';

export const MAX_CLIENT_ID_CHARS = 64;
const MAX_AUTHORIZATION_CHARS = 1024;

interface Credentials {
  clientId: string;
  secret: string | undefined;
  basic: boolean;
}

function basicCredentials(header: string): Credentials {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m || header.length > MAX_AUTHORIZATION_CHARS) throw new OAuthError('invalid_request', 'malformed Authorization header');
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) throw new OAuthError('invalid_request', 'malformed Basic credentials');
  // §2.3.1: client_id and secret are form-urlencoded before Basic encoding.
  try {
    const decode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
    return { clientId: decode(text.slice(0, colon)), secret: decode(text.slice(colon + 1)), basic: true };
  } catch {
    throw new OAuthError('invalid_request', 'malformed Basic credentials');
  }
}

function credentials(authorization: string | undefined, params: Params): Credentials {
  const bodyId = params.get('client_id');
  const bodySecret = params.get('client_secret');
  if (authorization !== undefined && /^Basic\s/i.test(authorization)) {
    if (bodySecret !== undefined) throw new OAuthError('invalid_request', 'use one client authentication method: HTTP Basic or client_secret, not both');
    const c = basicCredentials(authorization);
    if (bodyId !== undefined && bodyId !== c.clientId) throw new OAuthError('invalid_request', 'client_id differs from the Basic credentials');
    return c;
  }
  if (bodyId === undefined) throw new OAuthError('invalid_client', 'client authentication is required (HTTP Basic, or client_id in the body)');
  return { clientId: bodyId, secret: bodySecret, basic: false };
}

/** The calling client, or an OAuthError: invalid_client (401) when unknown or the secret is wrong. */
export async function authenticateClient(store: Store, authorization: string | undefined, params: Params): Promise<OAuthClientRecord> {
  for (const p of ['client_id', 'client_secret']) {
    if (params.duplicates.includes(p)) throw new OAuthError('invalid_request', `${p} appears more than once`);
  }
  const c = credentials(authorization, params);
  // §5.2: a client that tried HTTP Basic gets 401 with the scheme it should use.
  const fail = (why: string) => new OAuthError('invalid_client', why, 401, c.basic ? { 'www-authenticate': 'Basic realm="cloudrest", charset="UTF-8"' } : {});
  if (c.clientId.length === 0 || c.clientId.length > MAX_CLIENT_ID_CHARS || (c.secret?.length ?? 0) > MAX_SECRET_CHARS) throw fail('client authentication failed');
  const client = await store.getOAuthClient(c.clientId);
  if (!client) throw fail('client authentication failed');
  if (client.secretHash === null) {
    if (c.secret !== undefined && c.secret !== '') throw fail('a public client has no secret');
    return client;
  }
  if (c.secret === undefined || !safeEqualHex(sha256Hex(c.secret), client.secretHash)) throw fail('client authentication failed');
  return client;
}
