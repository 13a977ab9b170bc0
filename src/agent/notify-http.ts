import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './log.js';
import type { NotificationQueue } from './notify-queue.js';

/** Largest POST /notify body (or one line plus its line end, if larger). */
const MAX_POST_BYTES = 1024 * 1024;

/**
 * POST /notify on 127.0.0.1: the body holds one or more lines. All or nothing: 202 {"queued": n}, or
 * 413 when a line (or the body) is too long, or 503 when the queue has no room for every line.
 */
export class HttpNotifyInput {
  readonly #server: HttpServer;
  #port: number | undefined;

  constructor(
    private readonly requestedPort: number,
    private readonly queue: NotificationQueue,
    private readonly maxBytes: number,
    private readonly log: Logger,
  ) {
    this.#server = createHttpServer((req, res) => this.#handle(req, res));
    this.#server.maxHeadersCount = 64;
  }

  get port(): number | undefined {
    return this.#port;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.requestedPort, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    this.#server.on('error', (err) => this.log.error('notify HTTP server failed', { err }));
    this.log.info('notify listening', { port: this.#port });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/notify') return reply(res, 404, { error: 'not found: POST /notify' });
    if (req.method !== 'POST') return reply(res, 405, { error: 'method not allowed: POST /notify' }, { allow: 'POST' });
    const limit = Math.max(MAX_POST_BYTES, this.maxBytes + 2);
    const tooLarge = { error: `body larger than ${limit} bytes` };
    if (Number(req.headers['content-length'] ?? 0) > limit) return reply(res, 413, tooLarge, { connection: 'close' });
    const parts: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        parts.length = 0;
        reply(res, 413, tooLarge, { connection: 'close' });
        return;
      }
      parts.push(chunk);
    });
    req.on('error', () => {
      failed = true;
    });
    req.on('end', () => {
      if (!failed) this.#accept(Buffer.concat(parts, size), res);
    });
  }

  #accept(body: Buffer, res: ServerResponse): void {
    const lines = splitLines(body);
    if (lines.length === 0) return reply(res, 400, { error: 'empty body: send one notification per line' });
    if (lines.some((l) => l.length > this.maxBytes)) {
      return reply(res, 413, { error: `a notification line is longer than ${this.maxBytes} bytes` });
    }
    if (lines.length > this.queue.free) {
      this.log.warn('notifications refused: queue full', { input: 'http', lines: lines.length, queued: this.queue.size });
      return reply(res, 503, { error: 'notification queue full; retry later' }, { 'retry-after': '1' });
    }
    // Copies, so a queued line does not pin the whole body.
    for (const line of lines) this.queue.push(Buffer.from(line));
    reply(res, 202, { queued: lines.length });
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }
}

function splitLines(body: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  while (start <= body.length) {
    let end = body.indexOf(0x0a, start);
    if (end === -1) end = body.length;
    let line = body.subarray(start, end);
    if (line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (line.length > 0) lines.push(line);
    start = end + 1;
  }
  return lines;
}

function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
