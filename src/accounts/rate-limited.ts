import type { FastifyReply } from 'fastify';
import { HubError } from '../errors.js';

/**
 * 429 with Retry-After in whole seconds (RFC 9110 §10.2.3): CR_ERR_RATE_LIMITED for too many failed
 * attempts, CR_ERR_BUSY for too many password hashes at once hub-wide.
 */
export function sendRateLimited(res: FastifyReply, retryAfterMs: number, code: 'CR_ERR_RATE_LIMITED' | 'CR_ERR_BUSY' = 'CR_ERR_RATE_LIMITED'): FastifyReply {
  return res
    .code(429)
    .header('retry-after', String(retryAfterSeconds(retryAfterMs)))
    .header('cache-control', 'no-store')
    .send(new HubError(code).toJSON());
}

/** Retry-After's whole seconds for a wait in ms: at least 1. */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
