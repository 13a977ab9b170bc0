/**
 * A backend (the database, Redis) that cannot be reached, as the error a client sees: 503
 * CR_ERR_BACKEND_UNAVAILABLE, a stable code a client may retry on, instead of a 500. The Redis parts
 * throw it themselves (src/cluster/redis-connection.ts); a database driver's connection failures are
 * recognised here where requests fail.
 */
import { HubError } from '../errors.js';

/** Socket errors: the server is down, restarting or unreachable. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** PostgreSQL SQLSTATEs: class 08 (connection exception), 57P01..57P03 (shutting down, cannot connect now). */
const POSTGRES_DOWN = /^(08...|57P0[123])$/;
/** node-postgres's own messages when a connection dies or cannot be had in time. */
const PG_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/;

/** The 503 for `err` when it says a backend is unreachable; undefined for any other error. */
export function backendUnavailable(err: unknown): HubError | undefined {
  if (err instanceof HubError) return err.code === 'CR_ERR_BACKEND_UNAVAILABLE' ? err : undefined;
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  if ((typeof code === 'string' && (NETWORK_CODES.has(code) || POSTGRES_DOWN.test(code))) || PG_MESSAGES.test(err.message)) {
    return new HubError('CR_ERR_BACKEND_UNAVAILABLE', `the database is unavailable: ${err.message}`, { cause: err });
  }
  return undefined;
}
