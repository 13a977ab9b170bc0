/**
 * Server-sent events (WHATWG HTML §9.2, "Server-sent events") on a node:http ServerResponse.
 * formatSseEvent() is the framer, pure; openSse() owns the response: headers, heartbeats, backpressure
 * and closing. Under fastify: `reply.hijack(); openSse(request.raw, reply.raw, ...)`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HubError } from '../errors.js';

export interface SseEvent {
  /** Becomes the client's last event ID, sent back as Last-Event-ID when it reconnects. */
  id?: string | number;
  /** Event type; the client dispatches `message` when absent. */
  event?: string;
  /** Any text; line breaks are carried as several `data:` lines. */
  data: string;
}

/** client: the peer went away; server: close() was called; overflow: the client read too slowly. */
export type SseCloseReason = 'client' | 'server' | 'overflow';

export interface SseOptions {
  /** Interval of `: ping` comments, which keep proxies from timing the stream out and expose dead peers (config `sseHeartbeatMs`). */
  heartbeatMs: number;
  /** Bytes the response may hold for a slow client; beyond this the stream is cut and the client resumes with Last-Event-ID. */
  maxBufferedBytes: number;
  /** Reconnection delay to suggest to the client in a `retry:` field. Default: none sent (browsers wait about 3 s). */
  retryMs?: number;
}

export interface SseStream {
  /** Writes one event. False when the stream is closed, or this event made it overflow (it is then lost to this connection). */
  send(event: SseEvent): boolean;
  /** Ends the stream cleanly (the client will reconnect unless told otherwise by the application). */
  close(): void;
  readonly closed: boolean;
  /** Registers a listener called once when the stream ends, for any reason; at once if it already has. */
  onClose(listener: (reason: SseCloseReason) => void): void;
}

const LINE_BREAK = /\r\n|\r|\n/;
const HEARTBEAT = ': ping\n\n';

/**
 * One event in the wire format (§9.2.6 "Interpreting an event stream"). Throws TypeError when `id` or
 * `event` would break out of their line: a CR or LF there would let a value inject fields or events.
 */
export function formatSseEvent(event: SseEvent): string {
  let out = '';
  if (event.event !== undefined) {
    if (/[\r\n]/.test(event.event)) throw new TypeError('an SSE event type must not contain CR or LF');
    out += `event: ${event.event}\n`;
  }
  if (event.id !== undefined) {
    const id = String(event.id);
    // §9.2.6: a client ignores an id field containing U+0000, so it would silently not resume.
    if (/[\r\n\0]/.test(id)) throw new TypeError('an SSE id must not contain CR, LF or U+0000');
    out += `id: ${id}\n`;
  }
  // CR, LF and CRLF all end a line (§9.2.5), so each piece goes in its own field; the client joins
  // them with LF. The space after the colon is stripped by the client, so leading spaces survive.
  const data = event.data;
  if (data.indexOf('\n') === -1 && data.indexOf('\r') === -1) out += `data: ${data}\n`;
  else for (const line of data.split(LINE_BREAK)) out += `data: ${line}\n`;
  // A blank line dispatches the event. Note that a client does not dispatch an event whose data is
  // empty (§9.2.6 "dispatch the event", step 2), though it does take its id.
  return out + '\n';
}

/** Starts an event stream on `res`: writes the headers now, then heartbeats until it closes. */
export function openSse(req: IncomingMessage, res: ServerResponse, options: SseOptions): SseStream {
  const { heartbeatMs, maxBufferedBytes } = options;
  const listeners: ((reason: SseCloseReason) => void)[] = [];
  let closed = false;
  let reason: SseCloseReason = 'client';
  let timer: NodeJS.Timeout | undefined;

  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    // nginx buffers proxied responses by default, which would hold events back.
    'x-accel-buffering': 'no',
  });
  // Events are small and latency matters more than packet count.
  req.socket.setNoDelay(true);
  if (options.retryMs !== undefined) res.write(`retry: ${Math.max(0, Math.floor(options.retryMs))}\n\n`);
  else res.flushHeaders();

  const finish = (why: SseCloseReason): void => {
    if (closed) return;
    closed = true;
    reason = why;
    clearInterval(timer);
    for (const listener of listeners.splice(0)) {
      try {
        listener(why);
      } catch {
        // One failing cleanup must not skip the others.
      }
    }
  };

  const write = (chunk: string): boolean => {
    if (closed) return false;
    res.write(chunk);
    // writableLength counts what the response and its socket hold but the kernel has not taken: the
    // part a slow reader makes grow. Cutting the stream (rather than waiting for 'drain' and queueing
    // elsewhere) bounds memory; the client reconnects with Last-Event-ID and the history fills the gap.
    if (res.writableLength > maxBufferedBytes) {
      finish('overflow');
      res.destroy();
      return false;
    }
    return true;
  };

  res.on('close', () => finish('client'));
  // A write racing the socket's end can fail; without a listener that error would be thrown.
  res.on('error', () => finish('client'));
  if (res.destroyed) finish('client');
  else {
    timer = setInterval(() => write(HEARTBEAT), heartbeatMs);
    // An open stream must not keep the process alive on shutdown.
    timer.unref();
  }

  return {
    send: (event) => write(formatSseEvent(event)),
    close: () => {
      if (closed) return;
      finish('server');
      res.end();
    },
    get closed() {
      return closed;
    },
    onClose: (listener) => {
      if (closed) listener(reason);
      else listeners.push(listener);
    },
  };
}

const EVENT_ID = /^\d{1,16}$/;

/**
 * The id a reconnecting client last saw: the Last-Event-ID header (§9.2.4, sent by EventSource on
 * reconnection), else the `lastEventId` query parameter (for clients that cannot set headers on the
 * first connection). The header wins: EventSource reconnects to the same URL, so a query id may be stale.
 * Undefined when neither is present; HubError CR_ERR_VALIDATION when one is not an event id of ours.
 */
export function parseLastEventId(req: IncomingMessage): number | undefined {
  let raw = req.headers['last-event-id'];
  if (Array.isArray(raw)) raw = raw.join(',');
  let source = 'Last-Event-ID';
  if (raw === undefined || raw === '') {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    raw = q === -1 ? undefined : (new URLSearchParams(url.slice(q + 1)).get('lastEventId') ?? undefined);
    source = 'lastEventId';
  }
  if (raw === undefined || raw === '') return undefined;
  const trimmed = raw.trim();
  const id = Number(trimmed);
  if (!EVENT_ID.test(trimmed) || !Number.isSafeInteger(id)) {
    throw new HubError('CR_ERR_VALIDATION', `${source} must be a decimal event id`);
  }
  return id;
}
