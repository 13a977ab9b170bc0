import { execFile } from 'node:child_process';
import { constants as fsConstants, open as openCb } from 'node:fs';
import { lstat, unlink } from 'node:fs/promises';
import { connect as netConnect, createServer as createNetServer, Socket, type Server as NetServer } from 'node:net';
import { promisify } from 'node:util';
import type { Logger } from './log.js';
import { HttpNotifyInput } from './notify-http.js';
import { LineFeeder, type NotificationQueue } from './notify-queue.js';

const execFileP = promisify(execFile);
const openP = promisify(openCb);

/** Writers connected to --notify-socket at once. */
const MAX_SOCKET_WRITERS = 64;

export interface NotifyInputsOptions {
  pipe?: string | undefined;
  socket?: string | undefined;
  port?: number | undefined;
  maxNotificationBytes: number;
}

interface Input {
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Where device applications hand the agent their notifications (seed 002: "the daemon creates a unix
 * named pipe with mkfifo ... device applications write strings separated by new lines"): a named pipe,
 * a unix socket and a loopback HTTP endpoint, each optional. Every line becomes one notification.
 */
export class NotifyInputs {
  readonly #inputs: Input[] = [];
  #http: HttpNotifyInput | undefined;

  constructor(opts: NotifyInputsOptions, queue: NotificationQueue, log: Logger) {
    const max = opts.maxNotificationBytes;
    if (opts.pipe) this.#inputs.push(new FifoInput(opts.pipe, queue, max, log));
    if (opts.socket) this.#inputs.push(new UnixSocketInput(opts.socket, queue, max, log));
    if (opts.port !== undefined) this.#inputs.push((this.#http = new HttpNotifyInput(opts.port, queue, max, log)));
  }

  /** The port POST /notify listens on, once started. */
  get port(): number | undefined {
    return this.#http?.port;
  }

  async start(): Promise<void> {
    const started: Input[] = [];
    try {
      for (const input of this.#inputs) {
        await input.start();
        started.push(input);
      }
    } catch (err) {
      await Promise.all(started.map((i) => i.close()));
      throw err;
    }
  }

  /** Stops reading every input and removes the files this agent created. */
  async close(): Promise<void> {
    await Promise.all(this.#inputs.map((i) => i.close()));
  }
}

function tooLongWarning(log: Logger, input: string, maxBytes: number): () => void {
  return () => log.warn('notification dropped: line too long', { input, maxBytes });
}

async function removeIfCreated(path: string, created: boolean): Promise<void> {
  if (!created) return;
  await unlink(path).catch(() => undefined);
}

/**
 * The named pipe. Opened O_RDWR | O_NONBLOCK: holding a write end ourselves means the pipe never
 * reports EOF when a writer closes, and the non-blocking fd is read by the event loop (net.Socket on a
 * pipe handle) rather than by a thread-pool read that would block while no one writes.
 */
class FifoInput implements Input {
  #socket: Socket | undefined;
  #feeder: LineFeeder | undefined;
  #created = false;

  constructor(
    private readonly path: string,
    private readonly queue: NotificationQueue,
    private readonly maxBytes: number,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    try {
      const st = await lstat(this.path);
      if (!st.isFIFO()) throw new Error(`notify pipe ${this.path} exists and is not a named pipe`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await execFileP('mkfifo', [this.path]);
      this.#created = true;
    }
    const fd = await openP(this.path, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
    const socket = new Socket({ fd, readable: true, writable: false });
    const feeder = new LineFeeder(socket, this.queue, this.maxBytes, tooLongWarning(this.log, 'pipe', this.maxBytes));
    socket.on('data', (chunk: Buffer) => feeder.write(chunk));
    socket.on('error', (err) => this.log.error('notify pipe read failed', { pipe: this.path, err }));
    this.#socket = socket;
    this.#feeder = feeder;
    this.log.info('notify listening', { pipe: this.path });
  }

  async close(): Promise<void> {
    this.#feeder?.detach();
    this.#socket?.destroy();
    this.#socket = undefined;
    await removeIfCreated(this.path, this.#created);
    this.#created = false;
  }
}

/** A unix-socket server: any number of writers (up to a limit), each sending newline-separated lines. */
class UnixSocketInput implements Input {
  readonly #server: NetServer;
  readonly #conns = new Map<Socket, LineFeeder>();
  #created = false;

  constructor(
    private readonly path: string,
    private readonly queue: NotificationQueue,
    private readonly maxBytes: number,
    private readonly log: Logger,
  ) {
    this.#server = createNetServer((conn) => this.#onConnection(conn));
    this.#server.maxConnections = MAX_SOCKET_WRITERS;
  }

  async start(): Promise<void> {
    await removeStaleSocket(this.path);
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.path, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#created = true;
    this.#server.on('error', (err) => this.log.error('notify socket failed', { socket: this.path, err }));
    this.log.info('notify listening', { socket: this.path });
  }

  #onConnection(conn: Socket): void {
    const feeder = new LineFeeder(conn, this.queue, this.maxBytes, tooLongWarning(this.log, 'socket', this.maxBytes));
    this.#conns.set(conn, feeder);
    conn.on('data', (chunk: Buffer) => feeder.write(chunk));
    conn.on('end', () => {
      feeder.end();
      conn.end();
    });
    conn.on('error', (err) => this.log.debug('notify socket writer failed', { err }));
    conn.on('close', () => this.#conns.delete(conn));
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const [conn, feeder] of this.#conns) {
      feeder.detach();
      conn.destroy();
    }
    this.#conns.clear();
    if (this.#server.listening) await closed;
    await removeIfCreated(this.path, this.#created);
    this.#created = false;
  }
}

/** A socket file left by an agent that died is removed; one another process still serves is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw new Error(`notify socket ${path} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = netConnect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new Error(`notify socket ${path} is in use by another process`);
  await unlink(path).catch(() => undefined);
}
