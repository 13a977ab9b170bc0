/**
 * The authorization endpoint (RFC 6749 §3.1, §4.1.1-4.1.2):
 *
 * - `GET /v1/oauth/authorize?...`: the hub's login and consent page for the request.
 * - `POST /v1/oauth/authorize`: the user's decision. From that page as a form (email, password and the
 *   CSRF token), answered with 303 to the client's redirect URI; or as JSON from a first-party app that
 *   holds the user's token (`Authorization: Bearer`), answered with `{"redirect_to": ...}`.
 * - `POST /v1/oauth/authorize/validate`: checks a request (client, redirect URI, scope, PKCE) before a
 *   first-party app shows its own consent screen.
 */
import { MAX_EMAIL_CHARS } from '../core/device-fields.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERRORS, HubError, type ErrorCode } from '../errors.js';
import { requireSession } from '../http/api.js';
import type { PasswordAttempts } from '../accounts/password-attempts.js';
import { checkPassword } from '../accounts/password-check.js';
import { retryAfterSeconds } from '../accounts/rate-limited.js';
import type { Authenticator } from '../core/auth/authenticator.js';
import type { OAuthClientRecord, Store, UserRecord } from '../store/store.js';
import { checkAuthorizationRequest, requestFields, type AuthorizationCheck, type AuthorizationRequest } from './authorize-request.js';
import { PAGE_HEADERS, consentPage, errorPage } from './consent-page.js';
import { CONSENT_FORM_TTL_MS, CSRF_COOKIE, ConsentCsrf, readCookie } from './csrf.js';
import type { OAuthService } from './oauth-service.js';
import { Params } from './params.js';
import { withParams } from './redirect-uri.js';
import { SCOPES } from './scopes.js';

export interface AuthorizeDeps {
  store: Store;
  auth: Authenticator;
  service: OAuthService;
  issuer: () => string;
  /** Cookies get `Secure` when the hub is reached over HTTPS. */
  secureCookies: boolean;
  /** The failed-password limits of POST /v1/auth, shared: the consent form is another way to guess. */
  attempts?: PasswordAttempts;
}

const MAX_PASSWORD = 1024;
/** Fields of a JSON authorization request and their longest accepted values. */
const JSON_FIELDS: Readonly<Record<string, number>> = {
  response_type: 16, client_id: 64, redirect_uri: 2000, scope: 256, state: 512, code_challenge: 128, code_challenge_method: 16, decision: 8,
};

function sendPage(res: FastifyReply, status: number, html: string): FastifyReply {
  return res.code(status).headers(PAGE_HEADERS).send(html);
}

function showError(res: FastifyReply, code: ErrorCode, message: string): FastifyReply {
  return sendPage(res, ERRORS[code].status, errorPage(code, message));
}

/** A JSON body of string fields within their bounds, as Params; CR_ERR_VALIDATION otherwise. */
function jsonParams(body: unknown, allowed: readonly string[]): Params {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || body instanceof Params) {
    throw new HubError('CR_ERR_BAD_REQUEST', 'expected a JSON object (application/json)');
  }
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(body)) {
    const max = JSON_FIELDS[k];
    if (max === undefined || !allowed.includes(k)) throw new HubError('CR_ERR_VALIDATION', `unknown field ${JSON.stringify(k).slice(0, 80)}`);
    if (typeof v !== 'string' || v.length > max) throw new HubError('CR_ERR_VALIDATION', `${k} must be a string of at most ${max} characters`);
    fields[k] = v;
  }
  return new Params(new URLSearchParams(fields).toString());
}

/** A failed check as the JSON error a first-party app gets. */
function checkError(check: Exclude<AuthorizationCheck, { ok: true }>): HubError {
  if (!check.redirect) return new HubError(check.code, check.message);
  return new HubError(check.error === 'invalid_scope' ? 'CR_ERR_OAUTH_INVALID_SCOPE' : 'CR_ERR_OAUTH_INVALID_REQUEST', `${check.error}: ${check.description}`);
}

export function registerAuthorize(app: FastifyInstance, d: AuthorizeDeps): void {
  const csrf = new ConsentCsrf();

  /** RFC 6749 §4.1.2 and RFC 9207 (`iss`, against mix-up attacks). */
  const answer = (redirectUri: string, params: Record<string, string | undefined>) => withParams(redirectUri, { ...params, iss: d.issuer() });

  const cookieFor = (req: FastifyRequest, res: FastifyReply): string => {
    const existing = readCookie(req.headers.cookie, CSRF_COOKIE);
    const cookie = existing && /^[A-Za-z0-9_-]{43}$/.test(existing) ? existing : csrf.newCookie();
    const attrs = `Path=/v1/oauth/authorize; Max-Age=${CONSENT_FORM_TTL_MS / 1000}; HttpOnly; SameSite=Strict${d.secureCookies ? '; Secure' : ''}`;
    res.header('set-cookie', `${CSRF_COOKIE}=${cookie}; ${attrs}`);
    return cookie;
  };

  const showConsent = (req: FastifyRequest, res: FastifyReply, status: number, check: { client: OAuthClientRecord; request: AuthorizationRequest }, extra: { error?: string; email?: string } = {}) => {
    const cookie = cookieFor(req, res);
    return sendPage(res, status, consentPage({ client: check.client, request: check.request, csrf: csrf.token(cookie, requestFields(check.request)), ...extra }));
  };

  app.get('/v1/oauth/authorize', async (req, res) => {
    const check = await checkAuthorizationRequest(d.store, Params.ofUrl(req.url));
    if (!check.ok && !check.redirect) return showError(res, check.code, check.message);
    if (!check.ok) return res.redirect(answer(check.redirectUri, { error: check.error, error_description: check.description, state: check.state }), 302);
    return showConsent(req, res, 200, check);
  });

  app.post('/v1/oauth/authorize', { bodyLimit: 16 * 1024 }, async (req, res) => {
    if (req.body instanceof Params) return formDecision(req, res, req.body);
    // A first-party app acting for its logged-in user: no cookie is involved, so no CSRF exposure.
    const session = await requireSession(d.auth, req);
    const p = jsonParams(req.body, Object.keys(JSON_FIELDS));
    const check = await checkAuthorizationRequest(d.store, p);
    if (!check.ok) throw checkError(check);
    const decision = p.get('decision');
    if (decision !== 'allow' && decision !== 'deny') throw new HubError('CR_ERR_VALIDATION', 'decision must be "allow" or "deny"');
    return { redirect_to: await decide(decision, session.user, check.request) };
  });

  app.post('/v1/oauth/authorize/validate', { bodyLimit: 16 * 1024 }, async (req, res) => {
    const p = jsonParams(req.body, Object.keys(JSON_FIELDS).filter((k) => k !== 'decision'));
    const check = await checkAuthorizationRequest(d.store, p);
    if (!check.ok) throw checkError(check);
    res.header('cache-control', 'no-store');
    const r = check.request;
    return {
      client: { id: check.client.id, name: check.client.name },
      redirect_uri: r.redirectUri,
      scope: r.scopes.join(' '),
      scopes: r.scopes.map((s) => ({ name: s, description: SCOPES[s] })),
      state: r.state ?? null,
    };
  });

  async function decide(decision: 'allow' | 'deny', user: UserRecord | undefined, r: AuthorizationRequest): Promise<string> {
    if (decision === 'deny' || !user) return answer(r.redirectUri, { error: 'access_denied', error_description: 'the user denied the request', state: r.state });
    const code = await d.service.grantCode(user, r);
    return answer(r.redirectUri, { code, state: r.state });
  }

  async function formDecision(req: FastifyRequest, res: FastifyReply, p: Params): Promise<FastifyReply> {
    const check = await checkAuthorizationRequest(d.store, p);
    // The page only posts requests it showed as valid: anything else was altered on the way.
    if (!check.ok) return check.redirect ? showError(res, 'CR_ERR_OAUTH_INVALID_REQUEST', `${check.error}: ${check.description}`) : showError(res, check.code, check.message);
    if (!csrf.verify(readCookie(req.headers.cookie, CSRF_COOKIE), requestFields(check.request), p.get('csrf'))) {
      return showError(res, 'CR_ERR_OAUTH_CONSENT_EXPIRED', 'The consent form expired, was sent from another page, or its fields were altered. Go back to the application and start again.');
    }
    const decision = p.get('decision');
    if (decision === 'deny') return res.redirect(await decide('deny', undefined, check.request), 303);
    if (decision !== 'allow') return showError(res, 'CR_ERR_OAUTH_INVALID_REQUEST', 'decision must be allow or deny');
    const email = (p.get('email') ?? '').trim().toLowerCase();
    const password = p.get('password') ?? '';
    // Reserved before any hashing, like POST /v1/auth, and counted against the same limits.
    const c = await checkPassword(d.attempts, email, req.ip, async () =>
      email.length <= MAX_EMAIL_CHARS && password.length <= MAX_PASSWORD && email !== '' && password !== ''
        ? d.auth.verifyPassword(email, password, req.ip)
        : undefined);
    if (c.status === 'refused') {
      res.header('retry-after', String(retryAfterSeconds(c.retryAfterMs)));
      return showConsent(req, res, 429, check, { error: ERRORS[c.code].message, email: email.slice(0, MAX_EMAIL_CHARS) });
    }
    if (c.status === 'wrong') return showConsent(req, res, 401, check, { error: ERRORS.CR_ERR_INVALID_CREDENTIALS.message, email: email.slice(0, MAX_EMAIL_CHARS) });
    const user = c.value;
    // RFC 9700 §4.11: 303, so the browser does not repeat the POST (with the password) to the client.
    return res.redirect(await decide('allow', user, check.request), 303);
  }
}
