import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { TunnelChannel } from '../relay/protocol/channel.js';
import { PROTOCOL_VERSION } from '../relay/protocol/frames.js';
import type { Hello } from '../relay/protocol/handshake.js';
import type { RequestHead, ResponseHead } from '../relay/protocol/heads.js';
import { TunnelSession } from '../relay/protocol/session.js';
import { RouteError, type Opened, type ResponseListener, type WaitingStream } from '../relay/router.js';
import { connectLink, type ClusterSecrets } from './node-link-auth.js';
import { Verdict, linkHead, opHead, type LinkOp } from './node-link-wire.js';

export interface NodeLinkOptions {
  secrets: ClusterSecrets;
  /** Connect, TLS and the secret exchange, together. */
  handshakeTimeoutMs: number;
  maxFrameBytes: number;
  windowBytes: number;
  pingIntervalMs: number;
  /** No frame from the edge (it answers our pings) for this long: the link is dropped. */
  idleTimeoutMs: number;
  /** With a tls:// URL: the CA to check the edge against, and this node's certificate for mutual TLS. */
  tls?: Pick<ConnectionOptions, 'ca' | 'cert' | 'key'>;
}

/** `tcp://HOST:PORT` or `tls://HOST:PORT`. */
export function parseInternalUrl(url: string): { tls: boolean; host: string; port: number } {
  const u = new URL(url);
  if (u.protocol !== 'tcp:' && u.protocol !== 'tls:') throw new Error(`an internal URL is tcp://HOST:PORT or tls://HOST:PORT, not ${url}`);
  const port = Number(u.port);
  if (!Number.isInteger(port) || port < 1) throw new Error(`the internal URL ${url} has no port`);
  return { tls: u.protocol === 'tls:', host: u.hostname.replace(/^\[|\]$/g, ''), port };
}

/**
 * One exchange's stream on the front. A request with a body waits for the edge's verdict (started,
 * queued, busy, offline) before `opened` resolves, since its body must not go out before the device's
 * stream is open. A complete request (its head carried END) has nothing more to send, so it starts at
 * once ("ahead"): the edge sends no started or queued verdict for it, only a failure one, which reaches
 * the caller's listener as the RouteError one node would have answered with (429, 503).
 */
class LinkStream {
  #state: 'pending' | 'queued' | 'started' | 'done' = 'pending';
  #resolveOpen: ((o: Opened) => void) | undefined;
  #resolveStarted: ((ch: TunnelChannel) => void) | undefined;
  #rejectStarted: ((err: Error) => void) | undefined;
  channel!: TunnelChannel;
  opened: Promise<Opened> | undefined;
  /** Called once the stream needs no more verdicts: its entry in the link's pending map goes. */
  onDone: (() => void) | undefined;

  constructor(private readonly listener: ResponseListener, ahead: boolean) {
    if (ahead) {
      this.#state = 'started';
      return;
    }
    this.opened = new Promise((resolve) => {
      this.#resolveOpen = resolve;
    });
  }

  /** @returns true once the stream needs no more verdicts. */
  verdict(v: number): boolean {
    const pending = this.#state === 'pending';
    switch (v) {
      case Verdict.STARTED:
        if (pending) this.#resolveOpen!(this.channel);
        else if (this.#state === 'queued') this.#resolveStarted!(this.channel);
        if (this.#state !== 'done') this.#state = 'started';
        return true;
      case Verdict.QUEUED:
        if (!pending) return false;
        this.#state = 'queued';
        this.#resolveOpen!(this.#waiting());
        return false;
      case Verdict.BUSY:
      case Verdict.OFFLINE:
      case Verdict.DISCONNECTED: {
        const code = v === Verdict.BUSY ? 'CR_ERR_TOO_MANY_REQUESTS' : v === Verdict.DISCONNECTED ? 'CR_ERR_DEVICE_DISCONNECTED' : 'CR_ERR_DEVICE_OFFLINE';
        if (pending) this.#resolveOpen!(v === Verdict.BUSY ? 'busy' : 'offline');
        else if (this.#state === 'queued') this.#rejectStarted!(new RouteError(v === Verdict.DISCONNECTED ? 'CR_ERR_DEVICE_DISCONNECTED' : 'CR_ERR_DEVICE_OFFLINE'));
        else if (this.#state === 'started') this.listener.onError(new RouteError(code)); // a complete request sent ahead
        this.#state = 'done';
        return true;
      }
      default:
        return false;
    }
  }

  #waiting(): WaitingStream {
    const started = new Promise<TunnelChannel>((resolve, reject) => {
      this.#resolveStarted = resolve;
      this.#rejectStarted = reject;
    });
    return {
      started,
      cancel: () => {
        if (this.#state !== 'queued') return;
        this.#state = 'done';
        this.channel.cancel();
        this.#rejectStarted!(new RouteError('CR_ERR_DEVICE_OFFLINE', { cause: new Error('request cancelled while queued') }));
      },
    };
  }

  onResponse(head: ResponseHead, end: boolean): void {
    if (this.#state !== 'started') return;
    if (end) this.#finish();
    this.listener.onResponse(head, end);
  }

  onData(chunk: Buffer, end: boolean): void {
    if (this.#state !== 'started') return;
    if (end) this.#finish();
    this.listener.onData(chunk, end);
  }

  /** The stream was reset or the link closed: before a verdict, the edge (and so the device) is out of reach. */
  onError(err: Error): void {
    if (this.#state === 'started') {
      this.#finish();
      this.listener.onError(err);
    } else {
      this.verdict(Verdict.OFFLINE);
    }
  }

  /** The device answered in full or the stream failed: no verdict can come that matters. */
  #finish(): void {
    this.#state = 'done';
    this.onDone?.();
  }
}

/** The front's end of one node link: a multiplexed, authenticated connection to an edge. */
export class NodeLink {
  /** Streams waiting for their verdict, by stream id (NOTIFY's sequence number). */
  readonly #pending = new Map<number, LinkStream>();
  readonly #ping: NodeJS.Timeout;

  private constructor(readonly session: TunnelSession, opts: NodeLinkOptions) {
    session.on('notify', (seq: number, text: Buffer) => {
      const s = this.#pending.get(seq);
      if (s !== undefined && text.length === 1 && s.verdict(text[0]!)) this.#pending.delete(seq);
    });
    this.#ping = setInterval(() => {
      if (Date.now() - session.lastReceivedAt > opts.idleTimeoutMs) session.destroy(new Error('node link idle timeout'));
      else session.sendPing();
    }, opts.pingIntervalMs);
    this.#ping.unref();
    session.once('close', () => {
      clearInterval(this.#ping);
      this.#pending.clear();
    });
  }

  /** Connects to the edge at `url`, proves the cluster secret, and completes the tunnel handshake. */
  static async connect(url: string, opts: NodeLinkOptions): Promise<NodeLink> {
    const where = parseInternalUrl(url);
    const socket: Duplex = where.tls
      ? tlsConnect({ host: where.host, port: where.port, servername: where.host, ...opts.tls })
      : netConnect({ host: where.host, port: where.port, noDelay: true });
    const timer = setTimeout(() => socket.destroy(new Error(`node link to ${url}: no handshake within ${opts.handshakeTimeoutMs} ms`)), opts.handshakeTimeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once(where.tls ? 'secureConnect' : 'connect', resolve);
        socket.once('error', reject);
      });
      await connectLink(socket, opts.secrets, opts.handshakeTimeoutMs);
      const session = new TunnelSession(socket, 'hub', { maxFrameBytes: opts.maxFrameBytes, windowBytes: opts.windowBytes });
      socket.resume(); // the handshake left it paused, its next bytes put back for the session
      const hello = await new Promise<Hello>((resolve, reject) => {
        session.once('hello', resolve);
        session.once('close', reject);
      });
      session.sendWelcome({ version: PROTOCOL_VERSION, pingIntervalMs: opts.pingIntervalMs, idleTimeoutMs: opts.idleTimeoutMs, maxFrameBytes: opts.maxFrameBytes, windowBytes: opts.windowBytes }, hello);
      return new NodeLink(session, opts);
    } catch (err) {
      socket.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  get usable(): boolean {
    return !this.session.closed && !this.session.draining;
  }

  get activeStreams(): number {
    return this.session.activeStreams;
  }

  /**
   * Opens a relayed exchange with `deviceId` at the edge: a complete request (`end`) at once, one with a
   * body once the edge's verdict came (see LinkStream).
   */
  open(deviceId: string, head: RequestHead, end: boolean, listener: ResponseListener): Opened | Promise<Opened> {
    const s = new LinkStream(listener, end);
    const channel = this.session.openRequest(linkHead(deviceId, head), end, s);
    s.channel = channel;
    this.#pending.set(channel.id, s);
    s.onDone = () => {
      if (this.#pending.get(channel.id) === s) this.#pending.delete(channel.id);
    };
    return s.opened ?? channel;
  }

  /** Runs a control operation at the edge; true when the edge had the device's tunnel. */
  operate(deviceId: string, op: LinkOp, headers: Array<[string, string]>, body?: Buffer): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const ch = this.session.openRequest(opHead(deviceId, op, headers), body === undefined, {
        onResponse: (head) => resolve(head.status === 200),
        onData: () => undefined,
        onError: reject,
      });
      if (body !== undefined) ch.write(body, () => undefined, true);
    });
  }

  close(): void {
    this.session.close();
  }
}
