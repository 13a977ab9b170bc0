import type { IncomingMessage, ServerResponse } from 'node:http';
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

/** How long the rest of a refused request body is still read (and dropped) before the connection is cut. */
const LINGER_MS = 2000;

/**
 * For an answer sent before the request body was read (a 413): the rest of the body is read and dropped,
 * so a client still sending reads the answer. Closing at once would have the kernel answer its bytes with
 * a reset, which clients report instead ("Send failure: Broken pipe" from curl). A body that ends in
 * time keeps the connection; a client still sending after LINGER_MS is cut off.
 */
export function lingerOverRefusedBody(req: IncomingMessage): void {
  if (req.complete) return;
  req.resume();
  const socket = req.socket;
  const cut = setTimeout(() => socket.destroy(), LINGER_MS);
  cut.unref();
  const done = (): void => clearTimeout(cut);
  req.once('end', done);
  socket.once('close', done);
}
