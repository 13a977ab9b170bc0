/**
 * POST /v1/factory/devices: a factory registers a device it built (seed 002 "Device Factory
 * Provisioning") and receives the device's secret. Authenticated by a factory key
 * (`Authorization: Bearer crfk_...`, from `cloudrest factory-keys add`), not by a user token.
 *
 * Idempotent per factory key: asking again for a device this key provisioned answers the same secret
 * (derived, see factory-key.ts), so a station that lost the answer can simply retry. A device id that
 * exists otherwise (another key, `devices add`, `devices import`) is refused with 409.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import { deviceIdProblem, deviceNameProblem, emailProblem, normalizeOwnerEmail } from '../core/device-fields.js';
import type { Attempt, AttemptLimiter } from '../core/failure-limiter.js';
import { safeEqualHex, sha256Hex } from '../core/secrets.js';
import { HubError } from '../errors.js';
import type { HubMetrics } from '../core/metrics.js';
import { DuplicateError, type DeviceRecord, type FactoryKeyRecord, type Store } from '../store/store.js';
import { deriveDeviceSecret, MAX_FACTORY_KEY_CHARS } from './factory-key.js';

export const FACTORY_DEVICES_PATH = '/v1/factory/devices';
const FIELDS = new Set(['id', 'name', 'email']);

export interface FactoryApiDeps {
  store: Store;
  log: Logger;
  metrics: HubMetrics;
  /** Failed factory-key attempts per client address. */
  limiter: AttemptLimiter;
}

interface ProvisionBody {
  id: string;
  name: string;
  email: string | null;
}

/** The body's fields, checked one by one: unknown fields, wrong types and bad values are 400. */
function parseBody(body: unknown): ProvisionBody {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HubError('CR_ERR_VALIDATION', 'the body must be a JSON object {id, name?, email?}');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!FIELDS.has(k)) throw new HubError('CR_ERR_VALIDATION', `unknown field ${JSON.stringify(k.slice(0, 64))}`);
  const { id, name, email } = b;
  if (typeof id !== 'string') throw new HubError('CR_ERR_VALIDATION', 'id: a string is required');
  const idProblem = deviceIdProblem(id);
  if (idProblem) throw new HubError('CR_ERR_VALIDATION', `id: ${idProblem}`);
  if (name !== undefined && typeof name !== 'string') throw new HubError('CR_ERR_VALIDATION', 'name: must be a string');
  const nameProblem = name === undefined ? null : deviceNameProblem(name);
  if (nameProblem) throw new HubError('CR_ERR_VALIDATION', `name: ${nameProblem}`);
  if (email !== undefined && email !== null && typeof email !== 'string') throw new HubError('CR_ERR_VALIDATION', 'email: must be a string or null');
  const owner = normalizeOwnerEmail(email as string | null | undefined);
  const ownerProblem = owner === null ? null : emailProblem(owner);
  if (ownerProblem) throw new HubError('CR_ERR_VALIDATION', `email: ${ownerProblem.slice(0, 300)}`);
  return { id, name: name ?? id, email: owner };
}

export function registerFactoryApi(app: FastifyInstance, deps: FactoryApiDeps): void {
  const { store, log, limiter } = deps;
  const requests = new Counter({
    name: 'cloudrest_factory_requests_total',
    help: 'POST /v1/factory/devices answers by result',
    labelNames: ['result'],
    registers: [deps.metrics.registry],
  });
  const keys = new WeakMap<FastifyRequest, FactoryKeyRecord>();

  const refuse = (req: FastifyRequest, attempt: Attempt, code: 'CR_ERR_FACTORY_KEY_INVALID' | 'CR_ERR_FACTORY_KEY_REVOKED', reason: string, keyId?: string): never => {
    attempt.failed();
    requests.inc({ result: 'bad_key' });
    log.warn({ remoteAddress: req.socket.remoteAddress ?? '', reason, factoryKeyId: keyId }, 'factory request refused: bad factory key');
    throw new HubError(code);
  };

  /** Runs before the body is read: a client without a valid key learns nothing about its body. */
  const authenticate = async (req: FastifyRequest, res: FastifyReply): Promise<void> => {
    // Reserved before the key is looked up, so concurrent bad keys cannot outrun the limit.
    const { attempt, retryAfterMs } = await limiter.reserve(req.socket.remoteAddress ?? '');
    if (attempt === undefined) {
      requests.inc({ result: 'rate_limited' });
      res.header('retry-after', String(Math.ceil(retryAfterMs / 1000)));
      throw new HubError('CR_ERR_RATE_LIMITED');
    }
    try {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
      const key = m?.[1];
      if (key === undefined || key.length > MAX_FACTORY_KEY_CHARS) return refuse(req, attempt, 'CR_ERR_FACTORY_KEY_INVALID', key === undefined ? 'no factory key' : 'oversized key');
      const rec = await store.getFactoryKeyByHash(sha256Hex(key));
      if (rec === undefined) return refuse(req, attempt, 'CR_ERR_FACTORY_KEY_INVALID', 'unknown key');
      if (rec.revokedAt !== null) return refuse(req, attempt, 'CR_ERR_FACTORY_KEY_REVOKED', 'revoked key', rec.id);
      keys.set(req, rec);
    } finally {
      // A good key (or a failing Store) gives the reservation back; a good key does not clear the
      // address's failures, as it never did.
      attempt.release();
    }
  };

  app.post(FACTORY_DEVICES_PATH, { bodyLimit: 4096, onRequest: authenticate }, async (req, res) => {
    const key = keys.get(req)!;
    const body = parseBody(req.body);
    const secret = deriveDeviceSecret(key.derivationKey, key.id, body.id);
    const answer = (d: DeviceRecord, created: boolean) => {
      requests.inc({ result: created ? 'created' : 'again' });
      log.info({ deviceId: d.id, factoryKeyId: key.id, created }, created ? 'device provisioned by a factory' : 'device provisioned again by its factory');
      return res
        .code(created ? 201 : 200)
        .header('cache-control', 'no-store')
        .send({ id: d.id, secret, identity: sha256Hex(d.id), name: d.name, email: d.email, created });
    };
    try {
      return answer(await store.createDevice({ id: body.id, name: body.name, email: body.email, secretHash: sha256Hex(secret), factoryKeyId: key.id }), true);
    } catch (err) {
      if (!(err instanceof DuplicateError)) throw err;
    }
    // The id exists: the same answer if this key provisioned it, else refused.
    const existing = await store.getDevice(body.id);
    const refused = (code: 'CR_ERR_DEVICE_ID_TAKEN' | 'CR_ERR_DEVICE_REVOKED', message?: string) => {
      requests.inc({ result: code === 'CR_ERR_DEVICE_REVOKED' ? 'revoked' : 'taken' });
      log.warn({ deviceId: body.id, factoryKeyId: key.id, code }, 'factory request refused');
      return new HubError(code, message);
    };
    if (existing === undefined || existing.factoryKeyId !== key.id) throw refused('CR_ERR_DEVICE_ID_TAKEN');
    if (existing.revokedAt !== null) throw refused('CR_ERR_DEVICE_REVOKED');
    if (!safeEqualHex(sha256Hex(secret), existing.secretHash)) throw refused('CR_ERR_DEVICE_ID_TAKEN', 'The device id is registered with another secret');
    return answer(existing, false);
  });
}
