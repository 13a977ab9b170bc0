/**
 * The OAuth 2.0 provider's HTTP side, mounted on the hub's Fastify app: the authorization endpoint
 * and its page, the token endpoints, RFC 8414 metadata, and the user's list of granted integrations.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { PasswordAttempts } from '../accounts/password-attempts.js';
import { HubError } from '../errors.js';
import { requireSession } from '../http/api.js';
import type { Authenticator } from '../core/auth/authenticator.js';
import type { Store } from '../store/store.js';
import { MAX_CLIENT_ID_CHARS } from './client-auth.js';
import { registerAuthorize } from './http-authorize.js';
import { registerTokenEndpoints } from './http-token.js';
import type { OAuthService } from './oauth-service.js';
import { Params } from './params.js';
import { SCOPES } from './scopes.js';

export interface OAuthHttpDeps {
  store: Store;
  auth: Authenticator;
  service: OAuthService;
  log: Logger;
  /** The issuer identifier (RFC 8414 §2): the hub's public base URL. */
  issuer: () => string;
  secureCookies: boolean;
  /** Failed-password limits shared with POST /v1/auth. */
  attempts?: PasswordAttempts;
}

/** RFC 8414 §2 metadata. */
export function metadata(issuer: string): Record<string, unknown> {
  return {
    issuer,
    authorization_endpoint: `${issuer}/v1/oauth/authorize`,
    token_endpoint: `${issuer}/v1/oauth/token`,
    introspection_endpoint: `${issuer}/v1/oauth/token/validate`,
    revocation_endpoint: `${issuer}/v1/oauth/revoke`,
    scopes_supported: Object.keys(SCOPES),
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    authorization_response_iss_parameter_supported: true,
  };
}

export function registerOAuth(app: FastifyInstance, d: OAuthHttpDeps): void {
  app.get('/.well-known/oauth-authorization-server', async () => metadata(d.issuer()));

  // Routes in this plugin read HTML-form bodies too; the encapsulation keeps that parser to them.
  void app.register(async (oauth) => {
    oauth.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
      done(null, new Params(body as string));
    });

    registerAuthorize(oauth, { store: d.store, auth: d.auth, service: d.service, issuer: d.issuer, secureCookies: d.secureCookies, attempts: d.attempts });

    // First-party only: an integration must not list or remove the user's other integrations.
    oauth.get('/v1/oauth/grants', async (req, res) => {
      const { user } = await requireSession(d.auth, req);
      res.header('cache-control', 'no-store');
      return { grants: await d.service.grantsOf(user) };
    });

    oauth.delete('/v1/oauth/grants/:clientId', async (req, res) => {
      const { user } = await requireSession(d.auth, req);
      const { clientId } = req.params as { clientId: string };
      if (clientId.length > MAX_CLIENT_ID_CHARS || !(await d.service.revokeGrant(user, clientId))) throw new HubError('CR_ERR_NOT_FOUND', 'you have granted nothing to this client');
      return res.code(204).send();
    });

    // Errors in the RFC 6749 §5.2 shape, in their own scope.
    void oauth.register(async (tokens) => registerTokenEndpoints(tokens, d));
  });
}
