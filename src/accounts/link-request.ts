/**
 * What the mailed-link routes (the confirmation page, confirmation-api.ts, and the device-claim page,
 * claim-api.ts) read from a request: whether it wants JSON or a page, and a string field of its form
 * or JSON body.
 */
import type { FastifyRequest } from 'fastify';

/** Link ids are 43 base64url characters; anything longer is refused before a lookup. */
export const MAX_ID_CHARS = 128;

/** JSON for a JSON request (or a GET that asks for JSON and not HTML), else an HTML page. */
export function wantsJson(req: FastifyRequest): boolean {
  if (req.method !== 'GET') return (req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json');
  const accept = (req.headers.accept ?? '').toLowerCase();
  return accept.includes('application/json') && !accept.includes('text/html');
}

/** A string field of a parsed form or JSON body; undefined when absent or not a string. */
export function field(body: unknown, name: string): string | undefined {
  const v = (body as Record<string, unknown> | null | undefined)?.[name];
  return typeof v === 'string' ? v : undefined;
}
