/**
 * Checking an authorization request (RFC 6749 §4.1.1 with RFC 7636 PKCE), the same way for the
 * consent page, its form, POST /v1/oauth/authorize and POST /v1/oauth/authorize/validate.
 *
 * RFC 6749 §4.1.2.1: while the client or its redirect URI are in doubt, the error is shown to the
 * user and never sent to the URI; once both are known good, errors go back to the client there.
 */
import type { ErrorCode } from '../errors.js';
import type { OAuthClientRecord, Store } from '../store/store.js';
import { MAX_CLIENT_ID_CHARS } from './client-auth.js';
import type { OAuthErrorCode } from './oauth-error.js';
import type { Params } from './params.js';
import { MAX_REDIRECT_URI_CHARS } from './redirect-uri.js';
import { parseScope, formatScope, type Scope } from './scopes.js';
import { isS256Challenge } from './secrets.js';

export const MAX_STATE_CHARS = 512;

/** The parameters of a checked request; `fields()` lists them for the consent form's CSRF binding. */
export interface AuthorizationRequest {
  clientId: string;
  redirectUri: string;
  scopes: Scope[];
  state: string | undefined;
  codeChallenge: string | undefined;
}

export type AuthorizationCheck =
  | { ok: true; client: OAuthClientRecord; request: AuthorizationRequest }
  /** Shown to the user (never redirected): a CR_ERR code. */
  | { ok: false; redirect: false; code: ErrorCode; message: string }
  /** Sent to the client at its redirect URI. */
  | { ok: false; redirect: true; redirectUri: string; state: string | undefined; error: OAuthErrorCode; description: string };

/** The request's fields in a fixed order (what the consent form carries and the CSRF token covers). */
export function requestFields(r: AuthorizationRequest): string[] {
  return [r.clientId, r.redirectUri, formatScope(r.scopes), r.state ?? '', r.codeChallenge ?? ''];
}

export async function checkAuthorizationRequest(store: Store, p: Params): Promise<AuthorizationCheck> {
  const show = (code: ErrorCode, message: string): AuthorizationCheck => ({ ok: false, redirect: false, code, message });
  const clientId = p.get('client_id');
  const redirectUri = p.get('redirect_uri');
  if (p.duplicates.includes('client_id')) return show('CR_ERR_OAUTH_UNKNOWN_CLIENT', 'client_id appears more than once');
  if (clientId === undefined || clientId.length > MAX_CLIENT_ID_CHARS) return show('CR_ERR_OAUTH_UNKNOWN_CLIENT', 'client_id is missing or too long');
  const client = await store.getOAuthClient(clientId);
  if (!client) return show('CR_ERR_OAUTH_UNKNOWN_CLIENT', `no OAuth client ${JSON.stringify(clientId)}`);
  if (p.duplicates.includes('redirect_uri')) return show('CR_ERR_OAUTH_REDIRECT_URI', 'redirect_uri appears more than once');
  // This hub requires redirect_uri even when a client has one URI: the token request repeats it (§4.1.3).
  if (redirectUri === undefined || redirectUri.length > MAX_REDIRECT_URI_CHARS) return show('CR_ERR_OAUTH_REDIRECT_URI', 'redirect_uri is missing or too long');
  if (!client.redirectUris.includes(redirectUri)) return show('CR_ERR_OAUTH_REDIRECT_URI', 'redirect_uri does not exactly match a URI registered for this client');

  const rawState = p.get('state');
  const state = rawState !== undefined && rawState.length <= MAX_STATE_CHARS && !p.duplicates.includes('state') ? rawState : undefined;
  const back = (error: OAuthErrorCode, description: string): AuthorizationCheck => ({ ok: false, redirect: true, redirectUri, state, error, description });
  if (rawState !== undefined && state === undefined) return back('invalid_request', `state is longer than ${MAX_STATE_CHARS} characters or repeated`);
  if (p.duplicates.length > 0) return back('invalid_request', `${p.duplicates.join(', ')} appear(s) more than once`);

  const responseType = p.get('response_type');
  if (responseType === undefined) return back('invalid_request', 'response_type is missing');
  if (responseType !== 'code') return back('unsupported_response_type', 'only response_type=code is supported');

  const scopeText = p.get('scope');
  const scopes = scopeText === undefined ? undefined : parseScope(scopeText);
  if (scopes === undefined) return back('invalid_scope', 'scope must name one or more of devices:read, devices:control, events:read');

  // RFC 7636 §4.3: a challenge without a method is "plain". RFC 9700 §2.1.1: plain must not be used.
  const challenge = p.get('code_challenge');
  const method = p.get('code_challenge_method');
  if (method !== undefined && method !== 'S256') return back('invalid_request', 'code_challenge_method must be S256 (plain is not accepted)');
  if (challenge === undefined && method !== undefined) return back('invalid_request', 'code_challenge_method without code_challenge');
  if (challenge !== undefined && method === undefined) return back('invalid_request', 'code_challenge_method=S256 is required (plain is not accepted)');
  if (challenge !== undefined && !isS256Challenge(challenge)) return back('invalid_request', 'code_challenge must be 43 base64url characters (BASE64URL(SHA256(code_verifier)))');
  if (challenge === undefined && client.secretHash === null) return back('invalid_request', 'PKCE is required for public clients: send code_challenge and code_challenge_method=S256');

  return { ok: true, client, request: { clientId, redirectUri, scopes, state, codeChallenge: challenge } };
}
