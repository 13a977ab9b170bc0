import assert from 'node:assert/strict';
import { once } from 'node:events';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import {
  ErrorCode,
  FrameType,
  Flag,
  HEADER_BYTES,
  PROTOCOL_VERSION,
  decodeGoaway,
  encodeFrame,
  encodeHeader,
  u32,
  type Frame,
} from './frames.js';
import { encodeRequestHead, encodeResponseHead } from './heads.js';
import { FrameParser } from './parser.js';
import { socketPair } from './tunnel-pair.test.js';
import { TunnelSession, type Hello, type Role } from './session.js';

// A real TunnelSession on one end of a loopback socket; the test plays the peer byte by byte, so it can
// send what no well-behaved session would.

const MAX_FRAME = 16 * 1024;
const WINDOW = 4096;

interface RawPeer {
  session: TunnelSession;
  socket: net.Socket;
  /** Every frame the session sent, parsed. */
  frames: Frame[];
  send(type: number, flags: number, stream: number, payload?: Buffer): void;
  sendBytes(b: Buffer): void;
  /** Resolves once the session's side closed the connection, with the GOAWAY it sent last. */
  closed(): Promise<{ lastStream: number; code: number; reason: string }>;
  /** Resolves when the session has sent a frame of `type`. */
  receive(type: number): Promise<Frame>;
}

const hello = (over: Partial<Hello> = {}): Hello => ({
  version: PROTOCOL_VERSION, deviceId: 'dev', secret: 's', bootId: 'b', info: {}, maxFrameBytes: MAX_FRAME, windowBytes: WINDOW, maxStreams: 16, ...over,
});
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const welcome = { version: PROTOCOL_VERSION, pingIntervalMs: 1000, idleTimeoutMs: 5000, maxFrameBytes: MAX_FRAME, windowBytes: WINDOW };

/** A `role` session whose peer is the test. A hub session welcomes every HELLO unless `welcomes` is false. */
async function rawPeer(t: TestContext, role: Role, welcomes = true, maxFrameBytes = MAX_FRAME): Promise<RawPeer> {
  const [sessionSide, socket] = await socketPair(t);
  const session = new TunnelSession(sessionSide, role, { maxFrameBytes, windowBytes: WINDOW });
  if (role === 'hub' && welcomes) session.on('hello', (h: Hello) => session.sendWelcome(welcome, h));
  const frames: Frame[] = [];
  const parser = new FrameParser(1 << 24);
  const waiters: Array<() => void> = [];
  socket.on('data', (chunk: Buffer) => {
    parser.push(chunk, (f) => frames.push({ ...f, payload: Buffer.from(f.payload) }));
    for (const w of waiters.splice(0)) w();
  });
  const socketClosed = once(socket, 'close');
  return {
    session,
    socket,
    frames,
    send: (type, flags, stream, payload) => {
      for (const b of encodeFrame(type, flags, stream, payload)) socket.write(b);
    },
    sendBytes: (b) => socket.write(b),
    async closed() {
      await socketClosed;
      const last = frames.at(-1);
      assert.ok(last, 'the session sent nothing before closing');
      assert.equal(last.type, FrameType.GOAWAY, 'the last frame before the close is GOAWAY');
      assert.ok(session.closed);
      return decodeGoaway(last.payload);
    },
    async receive(type) {
      for (;;) {
        const f = frames.find((x) => x.type === type);
        if (f) return f;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
}

/** A raw agent that has said HELLO and been welcomed. */
async function welcomedAgent(t: TestContext): Promise<RawPeer> {
  const p = await rawPeer(t, 'hub');
  p.send(FrameType.HELLO, 0, 0, json(hello()));
  await p.receive(FrameType.WELCOME);
  return p;
}

/** A raw hub that has welcomed the agent session's HELLO. */
async function welcomingHub(t: TestContext): Promise<RawPeer> {
  const p = await rawPeer(t, 'agent');
  p.session.sendHello(hello());
  await p.receive(FrameType.HELLO);
  const welcomed = once(p.session, 'welcome');
  p.send(FrameType.WELCOME, 0, 0, json(welcome));
  await welcomed;
  return p;
}

function protocolErrors(session: TunnelSession): Error[] {
  const errs: Error[] = [];
  session.on('protocolError', (e: Error) => errs.push(e));
  return errs;
}

test('a connection that ends in the middle of a frame header is closed with PROTOCOL_ERROR', async (t) => {
  const p = await welcomedAgent(t);
  const errs = protocolErrors(p.session);
  p.sendBytes(encodeHeader(FrameType.PING, 0, 0, 8).subarray(0, 6));
  p.socket.end();
  const g = await p.closed();
  assert.equal(g.code, ErrorCode.PROTOCOL_ERROR);
  assert.match(g.reason, /ended/);
  assert.equal(errs.length, 1);
});

test('a connection that ends in the middle of a payload is closed with PROTOCOL_ERROR', async (t) => {
  const p = await welcomedAgent(t);
  p.sendBytes(Buffer.concat(encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8))).subarray(0, 14));
  p.socket.end();
  assert.equal((await p.closed()).code, ErrorCode.PROTOCOL_ERROR);
});

test('a frame larger than maxFrameBytes is refused from its header alone with FRAME_TOO_LARGE', async (t) => {
  const p = await welcomedAgent(t);
  // Only the header: the session must not wait for 16 KiB + 1 of payload before refusing.
  p.sendBytes(encodeHeader(FrameType.NOTIFY, 0, 0, MAX_FRAME + 1));
  const g = await p.closed();
  assert.equal(g.code, ErrorCode.FRAME_TOO_LARGE);
});

test('before the handshake a frame over 64 KiB is refused even if maxFrameBytes is higher', async (t) => {
  const p = await rawPeer(t, 'hub', true, 1 << 20);
  p.sendBytes(encodeHeader(FrameType.HELLO, 0, 0, 64 * 1024 + 1));
  assert.equal((await p.closed()).code, ErrorCode.FRAME_TOO_LARGE);
});

test('after WELCOME the hub accepts frames up to the maxFrameBytes it announced', async (t) => {
  const p = await rawPeer(t, 'hub', true, 1 << 20);
  p.send(FrameType.HELLO, 0, 0, json(hello()));
  await p.receive(FrameType.WELCOME);
  const notified = once(p.session, 'notify');
  const line = Buffer.alloc(200 * 1024, 0x61);
  p.send(FrameType.NOTIFY, 0, 0, Buffer.concat([u32(1), line]));
  const [, text] = (await notified) as [number, Buffer];
  assert.equal(text.length, line.length);
});

test('an unknown frame type closes the connection with PROTOCOL_ERROR', async (t) => {
  const p = await welcomedAgent(t);
  p.sendBytes(encodeHeader(0x10, 0, 0, 0));
  const g = await p.closed();
  assert.equal(g.code, ErrorCode.PROTOCOL_ERROR);
  assert.match(g.reason, /unknown frame type 0x10/);
});

test('a frame for a stream the hub never opened closes the connection with PROTOCOL_ERROR', async (t) => {
  const p = await welcomedAgent(t);
  p.send(FrameType.RESPONSE, 0, 7, encodeResponseHead({ status: 200, headers: [] }));
  const g = await p.closed();
  assert.equal(g.code, ErrorCode.PROTOCOL_ERROR);
  assert.match(g.reason, /never opened/);
});

test('a frame for a stream that already finished is ignored', async (t) => {
  const p = await welcomedAgent(t);
  const s = p.session.request({ method: 'GET', target: '/', headers: [] }, true);
  s.on('error', () => {});
  await p.receive(FrameType.REQUEST);
  const closed = new Promise((resolve) => s.once('close', resolve));
  p.send(FrameType.RESET, 0, 1, u32(ErrorCode.CANCEL));
  await closed;
  p.send(FrameType.WINDOW, 0, 1, u32(100)); // crossed the RESET on the wire: harmless
  p.send(FrameType.PING, 0, 0, Buffer.alloc(8));
  await p.receive(FrameType.PONG);
  assert.equal(p.session.closed, false);
});

test('a WINDOW, DATA or RESET on stream 0 closes the connection with PROTOCOL_ERROR', async (t) => {
  for (const type of [FrameType.WINDOW, FrameType.DATA, FrameType.RESET]) {
    const p = await welcomedAgent(t);
    p.send(type, 0, 0, u32(1));
    assert.equal((await p.closed()).code, ErrorCode.PROTOCOL_ERROR);
  }
});

test('a PING on a nonzero stream closes the connection with PROTOCOL_ERROR', async (t) => {
  const p = await welcomedAgent(t);
  p.send(FrameType.PING, 0, 3, Buffer.alloc(8));
  assert.equal((await p.closed()).code, ErrorCode.PROTOCOL_ERROR);
});

test('DATA beyond the stream window closes the connection with FLOW_CONTROL_ERROR (agent receiving a body)', async (t) => {
  const p = await welcomingHub(t);
  const streams: unknown[] = [];
  p.session.on('stream', (s: NodeJS.EventEmitter) => {
    streams.push(s);
    s.on('error', () => {});
  });
  p.send(FrameType.REQUEST, 0, 1, encodeRequestHead({ method: 'POST', target: '/x', headers: [] }));
  p.send(FrameType.DATA, 0, 1, Buffer.alloc(WINDOW)); // exactly the window: fine
  p.send(FrameType.DATA, 0, 1, Buffer.alloc(1)); // one byte too many
  const g = await p.closed();
  assert.equal(g.code, ErrorCode.FLOW_CONTROL_ERROR);
  assert.equal(streams.length, 1);
});

test('DATA beyond the stream window closes the connection with FLOW_CONTROL_ERROR (hub receiving a response)', async (t) => {
  const p = await welcomedAgent(t);
  const s = p.session.request({ method: 'GET', target: '/big', headers: [] }, true);
  s.on('error', () => {});
  await p.receive(FrameType.REQUEST);
  p.send(FrameType.RESPONSE, 0, 1, encodeResponseHead({ status: 200, headers: [] }));
  p.send(FrameType.DATA, 0, 1, Buffer.alloc(WINDOW + 1));
  assert.equal((await p.closed()).code, ErrorCode.FLOW_CONTROL_ERROR);
});

test('a WINDOW that would take the send window past 2^31-1 closes the connection with FLOW_CONTROL_ERROR', async (t) => {
  const p = await welcomedAgent(t);
  const s = p.session.request({ method: 'POST', target: '/', headers: [] }, false);
  s.on('error', () => {});
  await p.receive(FrameType.REQUEST);
  p.send(FrameType.WINDOW, 0, 1, u32(0x7fffffff));
  assert.equal((await p.closed()).code, ErrorCode.FLOW_CONTROL_ERROR);
});

test('a REQUEST sent towards the hub closes the connection with PROTOCOL_ERROR', async (t) => {
  const p = await welcomedAgent(t);
  p.send(FrameType.REQUEST, 0, 1, encodeRequestHead({ method: 'GET', target: '/', headers: [] }));
  const g = await p.closed();
  assert.equal(g.code, ErrorCode.PROTOCOL_ERROR);
  assert.match(g.reason, /REQUEST frame not allowed towards the hub/);
});

test('a REQUEST that reuses a stream id closes the connection with PROTOCOL_ERROR', async (t) => {
  const p = await welcomingHub(t);
  p.session.on('stream', (s: NodeJS.EventEmitter) => s.on('error', () => {}));
  p.send(FrameType.REQUEST, Flag.END_STREAM, 3, encodeRequestHead({ method: 'GET', target: '/a', headers: [] }));
  p.send(FrameType.REQUEST, Flag.END_STREAM, 3, encodeRequestHead({ method: 'GET', target: '/b', headers: [] }));
  assert.equal((await p.closed()).code, ErrorCode.PROTOCOL_ERROR);
});

test('a malformed request head closes the connection with PROTOCOL_ERROR', async (t) => {
  const p = await welcomingHub(t);
  p.send(FrameType.REQUEST, Flag.END_STREAM, 1, Buffer.from([3, 0x47, 0x45, 0x54, 0, 9, 0x2f])); // target cut short
  assert.equal((await p.closed()).code, ErrorCode.PROTOCOL_ERROR);
});

test('a frame before HELLO closes the connection with PROTOCOL_ERROR', async (t) => {
  const p = await rawPeer(t, 'hub');
  let hellos = 0;
  p.session.on('hello', () => hellos++);
  p.send(FrameType.PING, 0, 0, Buffer.alloc(8));
  p.send(FrameType.HELLO, 0, 0, json(hello()));
  const g = await p.closed();
  assert.equal(g.code, ErrorCode.PROTOCOL_ERROR);
  assert.match(g.reason, /before HELLO/);
  assert.equal(hellos, 0);
});

test('a NOTIFY sent after HELLO but before WELCOME closes the connection with PROTOCOL_ERROR', async (t) => {
  const p = await rawPeer(t, 'hub', false);
  p.send(FrameType.HELLO, 0, 0, json(hello()));
  p.send(FrameType.NOTIFY, 0, 0, Buffer.concat([u32(1), Buffer.from('early')]));
  assert.equal((await p.closed()).code, ErrorCode.PROTOCOL_ERROR);
});

test('a second HELLO closes the connection with PROTOCOL_ERROR, even while the first is being checked', async (t) => {
  const p = await rawPeer(t, 'hub', false); // authentication "in progress": no WELCOME yet
  let hellos = 0;
  p.session.on('hello', () => hellos++);
  p.send(FrameType.HELLO, 0, 0, json(hello()));
  p.send(FrameType.HELLO, 0, 0, json(hello({ deviceId: 'someone-else' })));
  assert.equal((await p.closed()).code, ErrorCode.PROTOCOL_ERROR);
  assert.equal(hellos, 1, 'the hub authenticates one HELLO per connection');
});

test('a HELLO with an out-of-range windowBytes is refused with PROTOCOL_ERROR before the hub sees it', async (t) => {
  const p = await rawPeer(t, 'hub', false);
  let hellos = 0;
  p.session.on('hello', () => hellos++);
  p.send(FrameType.HELLO, 0, 0, json(hello({ windowBytes: 10 })));
  const g = await p.closed();
  assert.equal(g.code, ErrorCode.PROTOCOL_ERROR);
  assert.match(g.reason, /windowBytes/);
  assert.equal(hellos, 0);
});

test('a HELLO that is not JSON closes the connection with PROTOCOL_ERROR', async (t) => {
  const p = await rawPeer(t, 'hub');
  p.send(FrameType.HELLO, 0, 0, Buffer.from('device=1'));
  assert.equal((await p.closed()).code, ErrorCode.PROTOCOL_ERROR);
});

test('a HELLO with another protocol version closes the connection with UNSUPPORTED_VERSION', async (t) => {
  const p = await rawPeer(t, 'hub');
  p.send(FrameType.HELLO, 0, 0, json(hello({ version: 2 })));
  const g = await p.closed();
  assert.equal(g.code, ErrorCode.UNSUPPORTED_VERSION);
  assert.match(g.reason, /version 2/);
});

test('a WELCOME with another protocol version makes the agent close with UNSUPPORTED_VERSION', async (t) => {
  const p = await rawPeer(t, 'agent');
  p.session.sendHello(hello());
  await p.receive(FrameType.HELLO);
  p.send(FrameType.WELCOME, 0, 0, json({ ...welcome, version: 2 }));
  assert.equal((await p.closed()).code, ErrorCode.UNSUPPORTED_VERSION);
  assert.equal(p.session.established, false);
});

test('a REQUEST before WELCOME makes the agent close with PROTOCOL_ERROR', async (t) => {
  const p = await rawPeer(t, 'agent');
  p.session.sendHello(hello());
  await p.receive(FrameType.HELLO);
  p.send(FrameType.REQUEST, Flag.END_STREAM, 1, encodeRequestHead({ method: 'GET', target: '/', headers: [] }));
  assert.equal((await p.closed()).code, ErrorCode.PROTOCOL_ERROR);
});

test('a PING with a payload other than 8 bytes closes the connection with PROTOCOL_ERROR', async (t) => {
  const p = await welcomedAgent(t);
  p.send(FrameType.PING, 0, 0, Buffer.alloc(4));
  assert.equal((await p.closed()).code, ErrorCode.PROTOCOL_ERROR);
});

test('open streams fail with the code when a protocol error closes the connection', async (t) => {
  const p = await welcomedAgent(t);
  const s = p.session.request({ method: 'GET', target: '/', headers: [] }, true);
  const failed = once(s, 'error').catch((e: unknown) => [e]);
  await p.receive(FrameType.REQUEST);
  p.sendBytes(encodeHeader(0xff, 0, 0, 0));
  const [err] = (await failed) as [{ code?: number }];
  assert.equal(err.code, ErrorCode.PROTOCOL_ERROR);
});

test('a protocol error on one tunnel leaves another tunnel on the same hub untouched', async (t) => {
  const bad = await welcomedAgent(t);
  const good = await welcomedAgent(t);
  const s = good.session.request({ method: 'GET', target: '/ok', headers: [] }, true);
  await good.receive(FrameType.REQUEST);

  bad.sendBytes(encodeHeader(0x42, 0, 0, 0));
  assert.equal((await bad.closed()).code, ErrorCode.PROTOCOL_ERROR);

  assert.equal(good.session.closed, false);
  good.send(FrameType.RESPONSE, Flag.END_STREAM, 1, encodeResponseHead({ status: 200, headers: [['x', 'y']] }));
  const [head] = (await once(s, 'response')) as [{ status: number }];
  assert.equal(head.status, 200);
  await sleep(10);
  assert.equal(good.session.closed, false);
  assert.equal(good.frames.some((f) => f.type === FrameType.GOAWAY), false);
});

test('frames split at every byte, or packed several to a chunk, are understood', async (t) => {
  const p = await rawPeer(t, 'hub');
  const bytes = Buffer.concat([
    ...encodeFrame(FrameType.HELLO, 0, 0, json(hello())),
    ...encodeFrame(FrameType.PING, 0, 0, Buffer.from('abcdefgh')),
    ...encodeFrame(FrameType.NOTIFY, 0, 0, Buffer.concat([u32(1), Buffer.from('hi')])),
  ]);
  const notified = once(p.session, 'notify');
  // HELLO byte by byte, the rest in one chunk once WELCOME is out.
  const helloLen = HEADER_BYTES + json(hello()).length;
  for (let i = 0; i < helloLen; i++) {
    p.sendBytes(bytes.subarray(i, i + 1));
    await sleep(0);
  }
  await p.receive(FrameType.WELCOME);
  p.sendBytes(bytes.subarray(helloLen));
  const pong = await p.receive(FrameType.PONG);
  assert.equal(pong.payload.toString(), 'abcdefgh');
  const [seq, text] = (await notified) as [number, Buffer];
  assert.equal(seq, 1);
  assert.equal(text.toString(), 'hi');
});
