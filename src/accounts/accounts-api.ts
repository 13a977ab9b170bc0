/**
 * Account endpoints beside POST /v1/auth and /v1/auth/logout (src/http/api.ts):
 *
 *   GET    /v1/auth/tokens           the caller's live tokens (ids, never tokens)
 *   DELETE /v1/auth/tokens/{id}      revoke one
 *   POST   /v1/auth/password         {current, new}: change it; every other token is revoked
 *   GET    /v1/devices/{id}/auth     does the device authenticate its users, does the hub hold a token
 *   POST   /v1/devices/{id}/auth     {password}: obtain the device's own token (device-auth.ts)
 *   DELETE /v1/devices/{id}/auth     forget it
 *
 * Confirmation links are in confirmation-api.ts, device claims (links and the pending list) in
 * claim-api.ts. They share one encapsulated scope, which adds a
 * parser for HTML form posts without imposing it on the rest of the API.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HubError } from '../errors.js';
import { requireSession } from '../http/api.js';
import type { Authenticator, Session } from '../core/auth/authenticator.js';
import type { Presence } from '../core/presence.js';
import type { DeviceRecord } from '../store/store.js';
import { registerClaimApi } from './claim-api.js';
import { registerConfirmationApi } from './confirmation-api.js';
import { MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS } from './confirmation-page.js';
import { apiAuthPath, type DeviceAuth } from './device-auth.js';
import type { PasswordAttempts } from './password-attempts.js';
import { checkPassword } from './password-check.js';
import { sendRateLimited } from './rate-limited.js';
import type { DeviceClaims } from './device-claims.js';
import type { Registration } from './registration.js';

export interface AccountsApiDeps {
  auth: Authenticator;
  registration: Registration;
  claims: DeviceClaims;
  /** Where devices are: the pending list's `online`. */
  presence: Presence;
  attempts: PasswordAttempts;
  deviceAuth: DeviceAuth;
  /** Retry-After for a confirmation resend that was held back. */
  resendRetryAfterS: number;
}

const TOKEN_ID = /^[0-9a-f]{16}$/;
const MAX_FORM_BYTES = 16 * 1024;

const passwordSchema = { type: 'string', minLength: MIN_PASSWORD_CHARS, maxLength: MAX_PASSWORD_CHARS } as const;

export function registerAccountsApi(app: FastifyInstance, deps: AccountsApiDeps): void {
  const { auth, attempts, deviceAuth } = deps;

  void app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: MAX_FORM_BYTES }, (_req, body, done) => {
      // Own properties only (fromEntries defines, never assigns), so `__proto__` is just a field name.
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    registerConfirmationApi(scope, deps.registration, deps.resendRetryAfterS);
    registerClaimApi(scope, { auth, claims: deps.claims, attempts, presence: deps.presence });

    scope.get('/v1/auth/tokens', async (req, res) => {
      const s = await requireSession(auth, req);
      res.header('cache-control', 'no-store');
      return { tokens: await auth.listTokens(s) };
    });

    scope.delete('/v1/auth/tokens/:id', async (req, res) => {
      const s = await requireSession(auth, req);
      const { id } = req.params as { id: string };
      if (!TOKEN_ID.test(id) || !(await auth.revokeById(s.user, id))) throw new HubError('CR_ERR_NOT_FOUND', 'no such token of yours');
      return res.code(204).send();
    });

    scope.post('/v1/auth/password', {
      schema: {
        body: {
          type: 'object',
          required: ['current', 'new'],
          properties: { current: { type: 'string', minLength: 1, maxLength: MAX_PASSWORD_CHARS }, new: passwordSchema },
        },
      },
    }, async (req, res) => {
      const s = await requireSession(auth, req);
      const body = req.body as { current: string; new: string };
      const account = s.user.email.toLowerCase();
      const c = await checkPassword(attempts, account, req.ip, async () => {
        const user = await auth.verifyPassword(s.user.email, body.current, req.ip);
        return user?.id === s.user.id ? user : undefined;
      });
      if (c.status === 'refused') return sendRateLimited(res, c.retryAfterMs, c.code);
      if (c.status === 'wrong') throw new HubError('CR_ERR_INVALID_CREDENTIALS', 'the current password is wrong');
      // Hashing the new password also waits its turn; a BusyError here is 429 CR_ERR_BUSY (http/api.ts).
      await auth.changePassword(s.user, body.new, s.tokenHash, req.ip);
      return res.code(204).send();
    });

    const ownedDevice = async (req: FastifyRequest): Promise<{ s: Session; d: DeviceRecord }> => {
      const s = await requireSession(auth, req);
      const { id } = req.params as { id: string };
      const d = await auth.ownedDevice(s.user, id);
      if (!d) throw new HubError('CR_ERR_DEVICE_NOT_FOUND');
      return { s, d };
    };

    scope.get('/v1/devices/:id/auth', async (req, res) => {
      const { s, d } = await ownedDevice(req);
      const expiresAt = deviceAuth.expiresAt(s.user.id, d.id);
      res.header('cache-control', 'no-store');
      return { required: apiAuthPath(d) !== undefined, authenticated: expiresAt !== undefined, expires: expiresAt === undefined ? null : new Date(expiresAt).toISOString() };
    });

    scope.post('/v1/devices/:id/auth', {
      schema: { body: { type: 'object', required: ['password'], properties: { password: { type: 'string', minLength: 1, maxLength: MAX_PASSWORD_CHARS } } } },
    }, async (req, res) => {
      const { s, d } = await ownedDevice(req);
      // The device checks the password; the hub still bounds how fast anyone may guess through it.
      // Reserved before the device is asked, so concurrent guesses cannot outrun the limit.
      const { attempt, retryAfterMs } = await attempts.reserve(`device ${d.id}`, req.ip);
      if (attempt === undefined) return sendRateLimited(res, retryAfterMs);
      try {
        const { expiresAt } = await deviceAuth.authenticate(s.user, d, (req.body as { password: string }).password, req.ip);
        attempt.succeeded();
        res.header('cache-control', 'no-store');
        return { authenticated: true, expires: new Date(expiresAt).toISOString() };
      } catch (err) {
        if (err instanceof HubError && err.code === 'CR_ERR_DEVICE_AUTH_FAILED') attempt.failed();
        throw err;
      } finally {
        attempt.release(); // an offline device, a timeout or a bad answer checked nothing
      }
    });

    scope.delete('/v1/devices/:id/auth', async (req, res) => {
      const { s, d } = await ownedDevice(req);
      deviceAuth.forget(s.user.id, d.id);
      return res.code(204).send();
    });
  });
}
