import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { describeError, type Logger } from '../log.js';
import { addressFacing } from './interfaces.js';
import { ReplyLimiter } from './rate-limit.js';
import { formatAnswer, isQuery } from './udp-text.js';

export interface UdpResponderOptions {
  /** Where broadcasts are received (seed: 15800). */
  port: number;
  /** The asker's port the answer goes to (seed: 15900). */
  replyPort: number;
  host?: string;
}

export interface UdpResponderDeps {
  log: Logger;
  /** The device's name (from its GET /device). */
  name: () => string;
  /** The REST API URL for a client that reached us at `localAddress`. */
  url: (localAddress: string) => string;
}

/**
 * Answers the seed's UDP discovery broadcast. Only short printable datagrams count as queries, only
 * askers on a directly connected subnet are answered (so the answer is an address they can reach,
 * and a forged far-away source gets nothing), and answers are rate-limited per asker and in all.
 */
export class UdpDiscoveryResponder {
  #socket: Socket | undefined;
  readonly #limiter = new ReplyLimiter(1000, 20);
  /** Datagrams ignored (junk, strangers, over the rate): for logs and tests. */
  ignored = 0;
  answered = 0;

  constructor(
    private readonly opts: UdpResponderOptions,
    private readonly deps: UdpResponderDeps,
  ) {}

  get port(): number {
    return this.#socket?.address().port ?? 0;
  }

  async start(): Promise<void> {
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    socket.on('message', (msg, rinfo) => this.#onMessage(socket, msg, rinfo));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.opts.port, this.opts.host ?? '0.0.0.0', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    // After binding, errors (an unreachable asker, say) are logged; the responder carries on.
    socket.on('error', (err) => this.deps.log.warn('discovery socket error', { err: describeError(err) }));
    this.#socket = socket;
  }

  close(): Promise<void> {
    const s = this.#socket;
    this.#socket = undefined;
    return new Promise((r) => (s ? s.close(() => r()) : r()));
  }

  #onMessage(socket: Socket, msg: Buffer, rinfo: RemoteInfo): void {
    const local = isQuery(msg) ? addressFacing(rinfo.address) : undefined;
    if (!local || !this.#limiter.allow(rinfo.address)) {
      this.ignored++;
      return;
    }
    const text = formatAnswer({ mac: local.mac, name: this.deps.name(), url: this.deps.url(local.address) });
    socket.send(text, this.opts.replyPort, rinfo.address, (err) => {
      if (err) this.deps.log.debug('discovery answer not sent', { to: rinfo.address, err: describeError(err) });
    });
    this.answered++;
    this.deps.log.debug('discovery answered', { to: rinfo.address, port: this.opts.replyPort });
  }
}
