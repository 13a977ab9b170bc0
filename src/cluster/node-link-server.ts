import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { LogLimiter } from '../core/log-limiter.js';
import type { TunnelChannel } from '../relay/protocol/channel.js';
import { ErrorCode, PROTOCOL_VERSION } from '../relay/protocol/frames.js';
import { decodeLanKeys, decodeRevoked } from '../relay/protocol/lan-frames.js';
import { TunnelSession } from '../relay/protocol/session.js';
import { RouteError, isWaiting, type ControlFrame, type Opened, type TunnelRouter } from '../relay/router.js';
import { acceptLink, type ClusterSecrets } from './node-link-auth.js';
import { EdgePipe } from './node-link-pipe.js';
import { CODE_HEADER, REASON_HEADER, VERDICTS, Verdict, headerValue, parseLinkHead, type LinkOp } from './node-link-wire.js';

/** Kind of the rate-limited log lines of refused node links (src/core/log-limiter.ts). */
const REFUSED = 'node link refused';
/** A control operation's body (LAN keys, a revocation list) is read whole; past this the stream is reset. */
const MAX_OP_BODY_BYTES = 8 * 1024 * 1024;

export interface NodeLinkServerOptions {
  /** This node's id: the HELLO's deviceId, so the front's logs name the edge. */
  nodeId: string;
  secrets: ClusterSecrets;
  /** From accept to a proven secret. */
  handshakeTimeoutMs: number;
  /** Links still proving their secret at once; past it new connections are dropped. */
  maxHandshakes: number;
  maxFrameBytes: number;
  windowBytes: number;
  /** A link with no frame (the front pings) for this long is dropped. */
  idleTimeoutMs: number;
  /** Streams open on one link at once; past it a stream is answered busy. */
  maxStreamsPerLink: number;
}

/**
 * The edge's end of the node links (docs/protocol.md "Node-to-node"): authenticates each connecting
 * node, then serves its streams through this node's own tunnels (`router`, a LocalTunnelRouter):
 * a relayed request becomes a stream to the device, piped both ways; an operation closes a tunnel or
 * sends it a control frame.
 */
export class NodeLinkServer {
  readonly #sessions = new Set<TunnelSession>();
  #handshakes = 0;
  readonly #sweep: NodeJS.Timeout;
  #closed = false;

  constructor(
    private readonly opts: NodeLinkServerOptions,
    private readonly deps: { router: TunnelRouter; log: Logger; refusals: LogLimiter },
  ) {
    this.#sweep = setInterval(() => this.#sweepIdle(), Math.max(50, Math.min(1000, opts.idleTimeoutMs / 4)));
    this.#sweep.unref();
  }

  get links(): number {
    return this.#sessions.size;
  }

  accept(stream: Duplex, remoteAddress: string): void {
    if (this.#closed || this.#handshakes >= this.opts.maxHandshakes) {
      this.deps.refusals.warn(REFUSED, remoteAddress, { remoteAddress, reason: 'too many node link handshakes' }, 'node link refused: too many handshakes');
      stream.destroy();
      return;
    }
    this.#handshakes++;
    stream.on('error', () => undefined); // a failed handshake is logged below; the session handles errors after it
    acceptLink(stream, this.opts.secrets, this.opts.handshakeTimeoutMs).then(
      () => {
        this.#handshakes--;
        if (this.#closed || stream.destroyed) stream.destroy();
        else this.#serve(stream, remoteAddress);
      },
      (err: Error) => {
        this.#handshakes--;
        this.deps.refusals.warn(REFUSED, remoteAddress, { remoteAddress, reason: err.message }, 'node link refused: authentication failed');
        stream.destroy();
      },
    );
  }

  #serve(stream: Duplex, remoteAddress: string): void {
    const { opts, deps } = this;
    const session = new TunnelSession(stream, 'agent', { maxFrameBytes: opts.maxFrameBytes, windowBytes: opts.windowBytes });
    stream.resume(); // the handshake left it paused, its next bytes put back for the session
    this.#sessions.add(session);
    session.onChannel = (ch) => this.#onStream(session, ch);
    session.on('protocolError', (err: Error) => deps.log.warn({ remoteAddress, err: err.message }, 'node link protocol error; link closed'));
    session.on('internalError', (err: unknown) => deps.log.error({ err, remoteAddress }, 'node link internal error'));
    session.once('close', () => this.#sessions.delete(session));
    session.sendHello({
      version: PROTOCOL_VERSION, deviceId: opts.nodeId, secret: '', bootId: opts.nodeId, info: {},
      maxFrameBytes: opts.maxFrameBytes, windowBytes: opts.windowBytes, maxStreams: opts.maxStreamsPerLink,
    });
    deps.log.info({ remoteAddress }, 'node link established');
  }

  #onStream(session: TunnelSession, ch: TunnelChannel): void {
    const req = parseLinkHead(ch.request!);
    if (req.kind === 'invalid') {
      this.deps.log.warn({ why: req.why }, 'node link stream refused');
      ch.cancel(ErrorCode.PROTOCOL_ERROR);
      return;
    }
    if (req.kind === 'op') {
      this.#operate(ch, req.deviceId, req.op, req.headers);
      return;
    }
    const pipe = new EdgePipe(ch);
    if (session.activeStreams > this.opts.maxStreamsPerLink) {
      this.#refuse(session, ch, Verdict.BUSY);
      return;
    }
    // A head that came with END is a complete request the front sent ahead (node-link.ts LinkStream):
    // it hears only failure verdicts, a frame less each way per request.
    const ahead = ch.peerEnded;
    const opened = this.deps.router.open(req.deviceId, req.head, ahead, pipe);
    if (opened instanceof Promise) {
      pipe.hold();
      opened.then((o) => this.#opened(session, ch, pipe, o, ahead), () => this.#refuse(session, ch, Verdict.OFFLINE));
    } else {
      this.#opened(session, ch, pipe, opened, ahead);
    }
  }

  #opened(session: TunnelSession, ch: TunnelChannel, pipe: EdgePipe, opened: Opened, ahead: boolean): void {
    if (opened === 'busy') return this.#refuse(session, ch, Verdict.BUSY);
    if (opened === 'offline') return this.#refuse(session, ch, Verdict.OFFLINE);
    if (pipe.over) {
      opened.cancel();
      return;
    }
    if (!isWaiting(opened)) {
      if (!ahead) this.#verdict(session, ch, Verdict.STARTED);
      pipe.started(opened);
      return;
    }
    if (!ahead) this.#verdict(session, ch, Verdict.QUEUED);
    pipe.hold();
    pipe.onFrontGone = opened.cancel;
    opened.started.then(
      (s) => {
        if (pipe.over) {
          s.cancel();
          return;
        }
        if (!ahead) this.#verdict(session, ch, Verdict.STARTED);
        pipe.started(s);
      },
      (err: unknown) => {
        if (pipe.over) return;
        this.#refuse(session, ch, err instanceof RouteError && err.code === 'CR_ERR_DEVICE_DISCONNECTED' ? Verdict.DISCONNECTED : Verdict.OFFLINE);
      },
    );
  }

  #verdict(session: TunnelSession, ch: TunnelChannel, verdict: number): void {
    session.sendNotify(ch.id, VERDICTS.find((b) => b[0] === verdict)!);
  }

  /** The verdict, then the stream is reset: the front answers its client as one node would (429, 503). */
  #refuse(session: TunnelSession, ch: TunnelChannel, verdict: number): void {
    if (ch.closed) return;
    this.#verdict(session, ch, verdict);
    ch.cancel(ErrorCode.REFUSED_STREAM);
  }

  #operate(ch: TunnelChannel, deviceId: string, op: LinkOp, headers: Array<[string, string]>): void {
    const parts: Buffer[] = [];
    let size = 0;
    const run = (): void => {
      this.#runOp(deviceId, op, headers, Buffer.concat(parts, size)).then(
        (done) => ch.respond({ status: done ? 200 : 404, headers: [] }, true),
        (err: unknown) => {
          this.deps.log.warn({ deviceId, op, err }, 'node link operation failed');
          ch.cancel(ErrorCode.INTERNAL_ERROR);
        },
      );
    };
    if (ch.peerEnded) return run();
    ch.listener = {
      onData: (chunk, end) => {
        size += chunk.length;
        if (size > MAX_OP_BODY_BYTES) {
          ch.cancel(ErrorCode.FRAME_TOO_LARGE);
          return;
        }
        parts.push(chunk);
        if (end) run();
      },
      onError: () => undefined,
    };
  }

  async #runOp(deviceId: string, op: LinkOp, headers: Array<[string, string]>, body: Buffer): Promise<boolean> {
    const { router } = this.deps;
    if (op === 'close') {
      const code = Number(headerValue(headers, CODE_HEADER));
      return router.closeTunnel(deviceId, Number.isInteger(code) ? code : ErrorCode.NO_ERROR, headerValue(headers, REASON_HEADER) ?? '');
    }
    const frame: ControlFrame = op === 'lan-keys' ? { kind: 'lan-keys', keys: decodeLanKeys(body) } : { kind: 'revoked', entries: decodeRevoked(body) };
    return router.send(deviceId, frame);
  }

  #sweepIdle(): void {
    const now = Date.now();
    for (const s of this.#sessions) {
      if (now - s.lastReceivedAt > this.opts.idleTimeoutMs) s.destroy(new Error('node link idle timeout'));
    }
  }

  /** Stops taking links; open ones are told to go (GOAWAY) and closed. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const s of [...this.#sessions]) s.close(ErrorCode.SHUTTING_DOWN, 'node is shutting down');
  }
}
