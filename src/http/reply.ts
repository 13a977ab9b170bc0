import type { ServerResponse } from 'node:http';
import { ERRORS, errorBody, type ErrorCode } from '../errors.js';

/** Writes a JSON error response with its stable code, unless headers already went out. */
export function sendError(res: ServerResponse, code: ErrorCode, message?: string, extraHeaders?: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(code, message);
  res.writeHead(ERRORS[code].status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...extraHeaders,
  });
  res.end(body);
}
