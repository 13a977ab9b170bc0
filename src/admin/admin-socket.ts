/**
 * The hub's local admin channel: a unix socket in the data folder (`hub.sock`, mode 0600), through
 * which `cloudrest devices revoke` (a separate process writing the same SQLite file) tells a running
 * hub to act on what it just wrote. Chosen over an HTTP admin endpoint because it needs no credential
 * of its own: file permissions say who may speak (the user that runs the hub), and it is never on the
 * network. Without a running hub the CLI's write still counts; the hub reads it at the next connect.
 *
 * Protocol: JSON lines. Request `{"op":"device-updated","id":"d_..."}`: the hub re-reads the device and,
 * if it is revoked or gone, closes its tunnel and MQTT connections. Answer: one line,
 * `{"ok":true,...}` or `{"ok":false,"error":"..."}`. Requests are bounded (line length, connections,
 * idle time); a request the hub cannot parse is answered with an error and the connection closed.
 */
import { chmodSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';

export const ADMIN_SOCKET_NAME = 'hub.sock';
/** sun_path is 108 bytes on Linux, NUL included. */
export const MAX_SOCKET_PATH_BYTES = 107;
const MAX_LINE_BYTES = 4096;
const MAX_CONNECTIONS = 16;
const IDLE_TIMEOUT_MS = 10_000;
const MAX_PENDING = 64;

export interface AdminHandlers {
  deviceUpdated(id: string): Promise<Record<string, unknown>>;
}

export interface AdminSocket {
  readonly path: string;
  close(): Promise<void>;
}

/** True when something answers on `path` (another hub holds it); false for a stale file. */
function inUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function bind(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // The socket file is created by the bind inside listen(): a umask that leaves only the owner's bits
    // means it is never reachable by others, not even between bind and chmod.
    const old = process.umask(0o177);
    try {
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(old);
    }
  });
}

/**
 * Listens on `path`. Returns undefined (after a warning) when it cannot: the path is too long for a
 * unix socket, or another live hub uses this data folder. A stale socket file left by a hub that
 * crashed is replaced.
 */
export async function startAdminSocket(path: string, handlers: AdminHandlers, log: Logger): Promise<AdminSocket | undefined> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    log.warn({ path }, 'admin socket off: the data folder path is too long for a unix socket; `cloudrest devices revoke` takes effect at the next connect');
    return undefined;
  }
  const sockets = new Set<Socket>();
  const server = createServer((s) => serve(s, handlers, log, sockets));
  server.maxConnections = MAX_CONNECTIONS;
  try {
    await bind(server, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    if (await inUse(path)) {
      log.warn({ path }, 'admin socket off: another hub is running on this data folder');
      return undefined;
    }
    unlinkSync(path);
    await bind(server, path);
  }
  chmodSync(path, 0o600);
  log.debug({ path }, 'admin socket listening');
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function serve(socket: Socket, handlers: AdminHandlers, log: Logger, sockets: Set<Socket>): void {
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
  socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  let buffered = '';
  let chain = Promise.resolve();
  const answer = (o: Record<string, unknown>) => {
    if (!socket.destroyed) socket.write(`${JSON.stringify(o)}\n`);
  };
  socket.setEncoding('utf8');
  let pending = 0;
  const refuse = (error: string) => {
    answer({ ok: false, error });
    socket.end();
    socket.removeAllListeners('data');
  };
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (Buffer.byteLength(line) > MAX_LINE_BYTES) return refuse(`request line over ${MAX_LINE_BYTES} bytes`);
      if (++pending > MAX_PENDING) return refuse(`more than ${MAX_PENDING} requests waiting`);
      // One request at a time per connection, answered in order.
      chain = chain.then(() => handle(line, handlers, log).then((a) => {
        pending--;
        answer(a);
      }));
    }
    if (Buffer.byteLength(buffered) > MAX_LINE_BYTES) refuse(`request line over ${MAX_LINE_BYTES} bytes`);
  });
}

async function handle(line: string, handlers: AdminHandlers, log: Logger): Promise<Record<string, unknown>> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { ok: false, error: 'not JSON' };
  }
  const { op, id } = (typeof req === 'object' && req !== null ? req : {}) as { op?: unknown; id?: unknown };
  if (op !== 'device-updated') return { ok: false, error: `unknown op ${JSON.stringify(op)}` };
  if (typeof id !== 'string' || id.length === 0 || id.length > 128) return { ok: false, error: 'id: a device id is required' };
  try {
    return { ok: true, ...(await handlers.deviceUpdated(id)) };
  } catch (err) {
    log.error({ err, deviceId: id }, 'admin request failed');
    return { ok: false, error: 'internal error' };
  }
}
