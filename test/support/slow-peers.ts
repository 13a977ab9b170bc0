/**
 * Hostile tunnel peers for tests: connections to a hub's tunnel port or `/v1/agent` that send a HELLO
 * one byte at a time (slowloris), or nothing at all, and record when and how the hub ended them.
 */
import { connect, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { decodeGoaway, encodeFrame, FrameType, HEADER_BYTES, PROTOCOL_VERSION } from '../../src/relay/protocol/frames.js';

export interface SlowPeer {
  readonly openedAt: number;
  /** When the hub closed it; undefined while open. */
  closedAt: number | undefined;
  /** The hub's GOAWAY, if one came. */
  goaway: { code: number; reason: string } | undefined;
  /** Stops trickling and closes it from this side. */
  stop(): void;
}

/** A HELLO frame (valid, with credentials that may or may not be right). */
export function helloFrame(deviceId = 'd_nobody', secret = 'wrong'): Buffer {
  const hello = { version: PROTOCOL_VERSION, deviceId, secret, bootId: 'slow', info: {}, maxFrameBytes: 65536, windowBytes: 65536, maxStreams: 4 };
  return Buffer.concat(encodeFrame(FrameType.HELLO, 0, 0, Buffer.from(JSON.stringify(hello))));
}

function goawayOf(bytes: Buffer): { code: number; reason: string } | undefined {
  let off = 0;
  while (off + HEADER_BYTES <= bytes.length) {
    const len = bytes.readUInt32BE(off + 1);
    if (bytes[off] === FrameType.GOAWAY && off + HEADER_BYTES + len <= bytes.length) return decodeGoaway(bytes.subarray(off + HEADER_BYTES, off + HEADER_BYTES + len));
    off += HEADER_BYTES + len;
  }
  return undefined;
}

/**
 * Opens one connection and, every `everyMs`, sends the next byte of a HELLO (never complete within a
 * test: it is ~170 bytes); `everyMs: 0` sends nothing. Resolves once connected (WebSocket: upgraded).
 */
export function slowPeer(opts: { port: number; transport: 'tcp' | 'ws'; everyMs: number; localAddress?: string; /** Sent at once on connect. */ send?: Buffer }): Promise<SlowPeer> {
  const hello = helloFrame();
  let sent = 0;
  let timer: NodeJS.Timeout | undefined;
  const got: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const peer: SlowPeer = { openedAt: 0, closedAt: undefined, goaway: undefined, stop: () => undefined };
    const onClose = () => {
      clearInterval(timer);
      peer.closedAt ??= Date.now();
      peer.goaway = goawayOf(Buffer.concat(got));
    };
    if (opts.transport === 'tcp') {
      const s: Socket = connect({ port: opts.port, host: '127.0.0.1', localAddress: opts.localAddress });
      s.on('data', (b: Buffer) => got.push(b));
      s.on('error', () => undefined);
      s.on('close', onClose);
      s.once('connect', () => {
        Object.assign(peer, { openedAt: Date.now(), stop: () => { clearInterval(timer); s.destroy(); } });
        if (opts.send) s.write(opts.send);
        if (opts.everyMs > 0) timer = setInterval(() => sent < hello.length && s.write(hello.subarray(sent, ++sent)), opts.everyMs);
        resolve(peer);
      });
      s.once('error', reject);
    } else {
      const ws = new WebSocket(`ws://127.0.0.1:${opts.port}/v1/agent`, { localAddress: opts.localAddress });
      ws.on('message', (b: Buffer) => got.push(b));
      ws.on('error', () => undefined);
      ws.on('close', onClose);
      ws.once('open', () => {
        Object.assign(peer, { openedAt: Date.now(), stop: () => { clearInterval(timer); ws.terminate(); } });
        if (opts.send) ws.send(opts.send);
        if (opts.everyMs > 0) timer = setInterval(() => sent < hello.length && ws.send(hello.subarray(sent, ++sent)), opts.everyMs);
        resolve(peer);
      });
      ws.once('error', reject);
    }
  });
}

/** Opens `n` peers, `concurrency` at a time, in order. */
export async function slowPeers(n: number, opts: Parameters<typeof slowPeer>[0], concurrency = 50): Promise<SlowPeer[]> {
  const peers: SlowPeer[] = [];
  for (let i = 0; i < n; i += concurrency) {
    peers.push(...(await Promise.all(Array.from({ length: Math.min(concurrency, n - i) }, () => slowPeer(opts)))));
  }
  return peers;
}

/** Waits until `pred` holds, polling; false if it did not by the deadline. */
export async function eventually(pred: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}
