import type { FastifyReply } from 'fastify';
import { HubError } from '../errors.js';

/** 429 CR_ERR_RATE_LIMITED with Retry-After in whole seconds (RFC 9110 §10.2.3). */
export function sendRateLimited(res: FastifyReply, retryAfterMs: number): FastifyReply {
  return res
    .code(429)
    .header('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000))))
    .header('cache-control', 'no-store')
    .send(new HubError('CR_ERR_RATE_LIMITED').toJSON());
}
