/**
 * The endpoints a client calls server to server, all application/x-www-form-urlencoded and all
 * answering errors in the RFC 6749 §5.2 shape (not the hub's CR_ERR_* shape):
 *
 * - `POST /v1/oauth/token`: grant_type authorization_code or refresh_token (RFC 6749 §4.1.3, §6).
 * - `POST /v1/oauth/token/validate`: token introspection (RFC 7662).
 * - `POST /v1/oauth/revoke`: token revocation (RFC 7009).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Store } from '../store/store.js';
import { authenticateClient } from './client-auth.js';
import { OAuthError } from './oauth-error.js';
import type { OAuthService } from './oauth-service.js';
import { Params } from './params.js';
import { MAX_SECRET_CHARS } from './secrets.js';

/** RFC 6749 §5.1: token responses (and errors) must not be cached. */
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' } as const;

export function registerTokenEndpoints(app: FastifyInstance, d: { store: Store; service: OAuthService; log: { error(o: object, m: string): void } }): void {
  app.setErrorHandler((err: FastifyError | OAuthError, _req, res) => {
    if (err instanceof OAuthError) return res.code(err.status).headers({ ...NO_STORE, ...err.headers }).send(err.toJSON());
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return res.code(413).headers(NO_STORE).send(new OAuthError('invalid_request', 'the request body is too large').toJSON());
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      return res.code(400).headers(NO_STORE).send(new OAuthError('invalid_request', err.message).toJSON());
    }
    d.log.error({ err }, 'OAuth endpoint failed');
    return res.code(500).headers(NO_STORE).send(new OAuthError('server_error', 'internal error').toJSON());
  });

  /** The form body and the authenticated client of a request. */
  async function begin(req: FastifyRequest) {
    if (!(req.body instanceof Params)) throw new OAuthError('invalid_request', 'the body must be application/x-www-form-urlencoded');
    const p = req.body;
    const client = await authenticateClient(d.store, req.headers.authorization, p);
    // §3.2: parameters must not be repeated.
    if (p.duplicates.length > 0) throw new OAuthError('invalid_request', `${p.duplicates.join(', ')} appear(s) more than once`);
    return { p, client };
  }

  function tokenParam(p: Params): string {
    const token = p.get('token');
    if (token === undefined) throw new OAuthError('invalid_request', 'token is missing');
    if (token.length > 4 * MAX_SECRET_CHARS) throw new OAuthError('invalid_request', 'token is too long');
    return token;
  }

  const limits = { bodyLimit: 16 * 1024 };

  app.post('/v1/oauth/token', limits, async (req, res: FastifyReply) => {
    const { p, client } = await begin(req);
    const grantType = p.get('grant_type');
    res.headers(NO_STORE);
    if (grantType === 'authorization_code') return d.service.exchangeCode(client, p);
    if (grantType === 'refresh_token') return d.service.refresh(client, p);
    if (grantType === undefined) throw new OAuthError('invalid_request', 'grant_type is missing');
    throw new OAuthError('unsupported_grant_type', 'grant_type must be authorization_code or refresh_token');
  });

  app.post('/v1/oauth/token/validate', limits, async (req, res: FastifyReply) => {
    const { p, client } = await begin(req);
    res.headers(NO_STORE);
    return d.service.introspect(client, tokenParam(p));
  });

  app.post('/v1/oauth/revoke', limits, async (req, res: FastifyReply) => {
    const { p, client } = await begin(req);
    await d.service.revoke(client, tokenParam(p));
    // RFC 7009 §2.2: 200 whether or not the token was valid; the body is ignored by clients.
    return res.code(200).headers(NO_STORE).send();
  });
}
