import { MAX_EMAIL_CHARS } from '../core/device-fields.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { checkPassword } from '../accounts/password-check.js';
import { retryAfterSeconds, sendRateLimited } from '../accounts/rate-limited.js';
import { backendUnavailable } from '../core/backend-errors.js';
import { BusyError } from '../core/fair-semaphore.js';
import type { PasswordAttempts } from '../accounts/password-attempts.js';
import { HubError, ERRORS, type ErrorCode } from '../errors.js';
import type { DeviceRecord, Store } from '../store/store.js';
import type { Presence, PresenceEntry } from '../core/presence.js';
import type { Scope } from '../oauth/scopes.js';
import { allows, bearerToken, type Authenticator, type Session } from '../core/auth/authenticator.js';
import type { HubMetrics } from '../core/metrics.js';
import { registerOpenApi } from './openapi.js';
import type { BackendHealth } from '../backends.js';

export interface ApiDeps {
  store: Store;
  auth: Authenticator;
  /** Where devices are: what `online`, `lastSeen` and `connectedAt` say. */
  presence: Presence;
  metrics: HubMetrics;
  isReady: () => boolean;
  /** The backends this node needs and whether each answers (src/backends.ts); /readyz reports them. */
  backendHealth?: () => Promise<BackendHealth[]>;
  /** Failed-password limits for POST /v1/auth (per account and per client address). */
  attempts?: PasswordAttempts;
}

const MAX_PASSWORD = 1024;

function reply(res: FastifyReply, code: ErrorCode, message?: string): FastifyReply {
  return res.code(ERRORS[code].status).header('cache-control', 'no-store').send(new HubError(code, message).toJSON());
}

/**
 * The session of the request's bearer token. With `scope`, an OAuth token must have that scope;
 * without, the endpoint is first-party only and an OAuth token (however scoped) gets 403.
 */
export async function requireSession(auth: Authenticator, req: FastifyRequest, scope?: Scope): Promise<Session> {
  const token = bearerToken(req.raw, true);
  const s = token ? await auth.session(token) : undefined;
  if (!s) throw new HubError('CR_ERR_UNAUTHORIZED');
  if (scope === undefined ? s.scopes !== undefined : !allows(s, scope)) {
    throw new HubError('CR_ERR_INSUFFICIENT_SCOPE', scope ? `this request needs the ${scope} scope` : 'this request needs a first-party token (POST /v1/auth), not an OAuth token');
  }
  return s;
}

/** Client API v1 (JSON) and the operational endpoints. The relay and SSE streams are mounted elsewhere. */
export function registerApi(app: FastifyInstance, deps: ApiDeps): void {
  const { store, auth, presence } = deps;

  const summary = (d: DeviceRecord, where: PresenceEntry | undefined) => ({
    id: d.id,
    name: d.name,
    online: where !== undefined,
    lastSeen: where !== undefined ? new Date().toISOString() : d.lastSeenAt ? new Date(d.lastSeenAt).toISOString() : null,
  });
  const summaries = async (devices: DeviceRecord[]) => {
    const where = await presence.getMany(devices.map((d) => d.id));
    return devices.map((d, i) => summary(d, where[i]));
  };

  app.setErrorHandler((err, _req, res) => {
    // RFC 6750 §3.1: a token without the needed scope.
    if (err instanceof HubError && err.code === 'CR_ERR_INSUFFICIENT_SCOPE') res.header('www-authenticate', 'Bearer error="insufficient_scope"');
    if (err instanceof HubError) return reply(res, err.code, err.message);
    // A password hash that found no slot (core/password-hasher.ts), wherever a route let it through.
    if (err instanceof BusyError) return reply(res.header('retry-after', String(retryAfterSeconds(err.retryAfterMs))), 'CR_ERR_BUSY');
    const down = backendUnavailable(err);
    if (down) return reply(res, down.code, down.message);
    const e = err as { code?: string; statusCode?: number; message: string; validation?: unknown };
    if (e.validation) return reply(res, 'CR_ERR_VALIDATION', e.message);
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply(res, 'CR_ERR_BODY_TOO_LARGE');
    if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply(res, 'CR_ERR_BAD_REQUEST', 'expected application/json');
    if (e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || (e.statusCode === 400 && /JSON/i.test(e.message))) return reply(res, 'CR_ERR_INVALID_JSON', e.message);
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return reply(res, 'CR_ERR_BAD_REQUEST', e.message);
    app.log.error({ err }, 'unhandled API error');
    return reply(res, 'CR_ERR_INTERNAL');
  });
  app.setNotFoundHandler((_req, res) => reply(res, 'CR_ERR_NOT_FOUND'));

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, res) => {
    res.header('cache-control', 'no-store');
    if (!deps.isReady()) return res.code(503).send({ status: 'not ready' });
    const health = (await deps.backendHealth?.()) ?? [];
    const backends = Object.fromEntries(health.map(({ backend, ok, error }) => [backend, ok ? { ok } : { ok, error }]));
    // A node whose Redis or database is away answers 503 CR_ERR_BACKEND_UNAVAILABLE to what needs them: take it out of rotation.
    if (health.some((h) => !h.ok)) return res.code(503).send({ status: 'not ready', backends });
    return { status: 'ready', backends };
  });
  app.get('/metrics', async (_req, res) => {
    res.header('content-type', deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
  registerOpenApi(app);

  app.post('/v1/auth', {
    schema: {
      body: {
        type: 'object',
        required: ['email', 'password'],
        additionalProperties: false,
        properties: {
          email: { type: 'string', minLength: 3, maxLength: MAX_EMAIL_CHARS },
          password: { type: 'string', minLength: 1, maxLength: MAX_PASSWORD },
          remember: { type: 'boolean' },
        },
      },
    },
  }, async (req, res) => {
    const { email, password, remember } = req.body as { email: string; password: string; remember?: boolean };
    const account = email.trim().toLowerCase();
    // Reserved before any hashing, so a locked account costs the hub nothing and a burst no more than the limit.
    const c = await checkPassword(deps.attempts, account, req.ip, () => auth.login(account, password, remember === true, req.ip));
    if (c.status === 'refused') return sendRateLimited(res, c.retryAfterMs, c.code);
    if (c.status === 'wrong') return reply(res, 'CR_ERR_INVALID_CREDENTIALS');
    const r = c.value;
    const devices = await summaries(await store.listDevicesByEmail(r.user.email));
    res.header('cache-control', 'no-store');
    return { access_token: r.token, token_type: 'Bearer', expires: new Date(r.expiresAt).toISOString(), devices };
  });

  app.post('/v1/auth/logout', async (req, res) => {
    await requireSession(auth, req);
    await auth.logout(bearerToken(req.raw, true)!);
    return res.code(204).send();
  });

  const listDevices = async (req: FastifyRequest) => {
    const s = await requireSession(auth, req, 'devices:read');
    return { devices: await summaries(await store.listDevicesByEmail(s.user.email)) };
  };
  app.get('/v1/devices', listDevices);
  app.get('/v1/devices/list', listDevices); // the seed's name for the same list

  app.get('/v1/devices/:id', async (req) => {
    const s = await requireSession(auth, req, 'devices:read');
    const { id } = req.params as { id: string };
    const d = await auth.ownedDevice(s.user, id);
    if (!d) throw new HubError('CR_ERR_DEVICE_NOT_FOUND');
    const where = await presence.get(id);
    return { ...summary(d, where), info: d.info ?? {}, connectedAt: where ? new Date(where.since).toISOString() : null, createdAt: new Date(d.createdAt).toISOString() };
  });
}
