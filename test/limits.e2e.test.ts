import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { encodeFrame, FrameType, HEADER_BYTES, PROTOCOL_VERSION, decodeGoaway, ErrorCode } from '../src/relay/protocol/frames.js';
import { TunnelSession } from '../src/relay/protocol/session.js';
import { curl } from './support/procs.js';
import { startWorld, type World } from './support/world.js';

/**
 * Opens a raw TCP connection to the tunnel port, sends bytes, and collects what the hub answers until
 * it closes. `afterWelcome` is sent once the hub's first answer (WELCOME) arrives.
 */
function rawTunnel(port: number, bytes: Buffer[], afterWelcome: Buffer[] = []): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    s.on('data', (b) => {
      if (got.length === 0) for (const x of afterWelcome) s.write(x);
      got.push(b);
    });
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(got)));
    s.on('connect', () => {
      for (const b of bytes) s.write(b);
    });
    setTimeout(() => s.destroy(new Error('hub did not close the connection')), 5000).unref();
  });
}

function goawayIn(answer: Buffer): { code: number; reason: string } {
  // Find the GOAWAY frame among what the hub sent (a WELCOME may come first).
  let off = 0;
  while (off + HEADER_BYTES <= answer.length) {
    const type = answer[off]!;
    const len = answer.readUInt32BE(off + 1);
    if (type === FrameType.GOAWAY) return decodeGoaway(answer.subarray(off + HEADER_BYTES, off + HEADER_BYTES + len));
    off += HEADER_BYTES + len;
  }
  throw new Error(`no GOAWAY in ${answer.toString('hex')}`);
}

describe('limits: bad input gets a clear error and the hub carries on', () => {
  let w: World;
  before(async () => {
    w = await startWorld({ hubArgs: ['--request-timeout-ms', '400', '--max-request-body-bytes', '1000', '--max-inflight-per-device', '2', '--max-queued-per-device', '2'] });
  });
  after(async () => {
    await w?.stop();
  });

  it('answers 504 CR_ERR_DEVICE_TIMEOUT when the device does not answer in time', async () => {
    const r = await fetch(`${w.api}/slow?ms=3000`, { headers: w.auth });
    assert.equal(r.status, 504);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'CR_ERR_DEVICE_TIMEOUT');
  });

  it('answers 413 for a declared body over the limit and for a chunked body that grows past it', async () => {
    const declared = await fetch(`${w.api}/sink`, { method: 'POST', headers: w.auth, body: Buffer.alloc(5000) });
    assert.equal(declared.status, 413);
    assert.equal(((await declared.json()) as { error: { code: string } }).error.code, 'CR_ERR_BODY_TOO_LARGE');
    // curl sends a chunked body of unknown size from stdin.
    const { stdout } = await curl(['-X', 'POST', '-H', `Authorization: Bearer ${w.token}`, '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${process.execPath}`, '-w', '\n%{http_code}', `${w.api}/sink`]);
    assert.match(stdout, /CR_ERR_BODY_TOO_LARGE[\s\S]*\n413$/);
    const ok = await fetch(`${w.api}/sink`, { method: 'POST', headers: w.auth, body: Buffer.alloc(900) });
    assert.equal(ok.status, 200, 'a body under the limit still passes');
    assert.equal(((await ok.json()) as { size: number }).size, 900);
  });

  it('reads the rest of a refused body for a while, so a client still sending gets its 413, and cuts one that never stops', async () => {
    const api = new URL(w.api);
    const s = connect(Number(api.port), api.hostname);
    await once(s, 'connect');
    let answer = '';
    s.setEncoding('latin1').on('data', (d: string) => (answer += d));
    const closed = once(s, 'close');
    s.on('error', () => undefined); // the cut at the end
    s.write(`POST ${api.pathname}/sink HTTP/1.1\r\nhost: ${api.host}\r\nauthorization: Bearer ${w.token}\r\ntransfer-encoding: chunked\r\n\r\n`);
    const chunk = `400\r\n${'x'.repeat(0x400)}\r\n`;
    s.write(chunk + chunk); // past the 1000-byte limit
    const started = Date.now();
    // Still sending, as a client uploading a large body does, after the answer came.
    let writeError: unknown;
    for (let sent = 0; Date.now() - started < 6000 && !s.destroyed; sent++) {
      await new Promise<void>((resolve) => s.write(chunk, (err) => ((writeError ??= err ?? undefined), resolve())));
      await new Promise((r) => setTimeout(r, 20));
      if (Date.now() - started < 1000) assert.equal(writeError, undefined, `the hub still reads ${Date.now() - started} ms after the 413`);
    }
    await closed;
    const cutAfter = Date.now() - started;
    assert.match(answer, /^HTTP\/1\.1 413 [\s\S]*CR_ERR_BODY_TOO_LARGE/);
    assert.ok(cutAfter >= 1500 && cutAfter < 6000, `a client that never stops is cut off after about 2 s (${cutAfter} ms)`);
  });

  it('queues beyond the in-flight limit and answers 429 when the queue is full', async () => {
    // 2 in flight + 2 queued fit; the rest are refused at once.
    const slow = Array.from({ length: 6 }, () => fetch(`${w.api}/slow?ms=300`, { headers: w.auth }).then(async (r) => ({ status: r.status, body: await r.text() })));
    const results = await Promise.all(slow);
    const refused = results.filter((r) => r.status === 429);
    assert.equal(refused.length, 2, JSON.stringify(results.map((r) => r.status)));
    assert.match(refused[0]!.body, /CR_ERR_TOO_MANY_REQUESTS/);
    assert.ok(results.filter((r) => r.status === 200 || r.status === 504).length === 4);
  });

  const cases: Array<[string, () => Buffer[], number]> = [
    ['unknown frame type', () => [Buffer.from([0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0])], ErrorCode.PROTOCOL_ERROR],
    ['oversized frame', () => [Buffer.from([FrameType.HELLO, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0])], ErrorCode.FRAME_TOO_LARGE],
    ['DATA before HELLO', () => encodeFrame(FrameType.DATA, 0, 1, Buffer.from('x')), ErrorCode.PROTOCOL_ERROR],
    ['HELLO that is not JSON', () => encodeFrame(FrameType.HELLO, 0, 0, Buffer.from('{nope')), ErrorCode.PROTOCOL_ERROR],
    ['HELLO of an unknown protocol version', () => encodeFrame(FrameType.HELLO, 0, 0, Buffer.from(JSON.stringify({ version: 99 }))), ErrorCode.UNSUPPORTED_VERSION],
    ['HELLO with a wrong secret', () => encodeFrame(FrameType.HELLO, 0, 0, Buffer.from(JSON.stringify({ version: PROTOCOL_VERSION, deviceId: 'x', secret: 'y', bootId: 'b', info: {}, maxFrameBytes: 65536, windowBytes: 65536, maxStreams: 4 }))), ErrorCode.AUTH_FAILED],
  ];
  for (const [name, frames, code] of cases) {
    it(`closes a tunnel that sends ${name} with GOAWAY ${Object.entries(ErrorCode).find(([, v]) => v === code)![0]}`, async () => {
      const answer = await rawTunnel(w.hub.tunnelPort, frames());
      assert.equal(goawayIn(answer).code, code);
    });
  }

  it('closes an authenticated tunnel that sends DATA for a stream never opened, or a truncated frame, and nobody else is affected', async () => {
    const hello = encodeFrame(FrameType.HELLO, 0, 0, Buffer.from(JSON.stringify({ version: PROTOCOL_VERSION, deviceId: w.deviceId, secret: w.secret, bootId: 'intruder', info: { email: w.email }, maxFrameBytes: 65536, windowBytes: 65536, maxStreams: 4 })));
    // A second connection with the device's credentials takes over, then misbehaves.
    const answer = await rawTunnel(w.hub.tunnelPort, hello, encodeFrame(FrameType.DATA, 0, 77, Buffer.from('junk')));
    assert.equal(goawayIn(answer).code, ErrorCode.PROTOCOL_ERROR);
    assert.match(goawayIn(answer).reason, /never opened/);
    // A truncated frame followed by a close: the hub drops the connection and stays up.
    await rawTunnel(w.hub.tunnelPort, [Buffer.from([FrameType.HELLO, 0, 0, 1, 0, 0])]).catch(() => undefined);
    // The real agent reconnects (it was taken over) and the relay works again.
    await w.agent.waitFor((l) => l.includes('"msg":"connected"') && w.agent.logs('connected').length >= 2, 10_000);
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      const r = await fetch(`${w.api}/device`, { headers: w.auth });
      status = r.status;
      await r.arrayBuffer();
      if (status !== 200) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(status, 200);
    const health = await fetch(`${w.hub.url}/healthz`);
    assert.equal(health.status, 200);
  });

  it('answers 502 for a response head Node cannot send (a control character in a field), and that tunnel carries on', async () => {
    // An agent of someone else's making, with the device's credentials (it takes over the tunnel).
    const socket = connect(w.hub.tunnelPort, '127.0.0.1');
    await once(socket, 'connect');
    const session = new TunnelSession(socket, 'agent', { maxFrameBytes: 65536, windowBytes: 65536 });
    session.onChannel = (ch) => {
      const bad = ch.request?.target === '/bad';
      const body = Buffer.from('{"ok":true}');
      ch.respond({ status: 200, headers: [['content-type', 'application/json'], ['x-note', bad ? 'a\u0001b' : 'fine'], ['content-length', String(body.length)]] });
      ch.write(body, () => undefined, true);
    };
    const welcomed = once(session, 'welcome');
    session.sendHello({ version: PROTOCOL_VERSION, deviceId: w.deviceId, secret: w.secret, bootId: 'hand-made', info: { email: w.email }, maxFrameBytes: 65536, windowBytes: 65536, maxStreams: 4 });
    await welcomed;
    try {
      const bad = await fetch(`${w.api}/bad`, { headers: w.auth });
      assert.equal(bad.status, 502);
      const err = (await bad.json()) as { error: { code: string; message: string } };
      assert.equal(err.error.code, 'CR_ERR_DEVICE_API_UNREACHABLE');
      assert.match(err.error.message, /not valid HTTP/);
      const good = await fetch(`${w.api}/good`, { headers: w.auth });
      assert.equal(good.status, 200, 'the same tunnel answers the next request');
      assert.equal(good.headers.get('x-note'), 'fine');
      assert.deepEqual(await good.json(), { ok: true });
      assert.equal(session.closed, false);
    } finally {
      session.close();
    }
    // The real agent takes its tunnel back.
    await w.agent.waitFor(() => w.agent.logs('connected').length >= 3, 15_000);
  });

  it('answers 502 CR_ERR_DEVICE_API_UNREACHABLE when the agent cannot reach the device REST service', async () => {
    await w.device.stop();
    const r = await fetch(`${w.api}/device`, { headers: w.auth });
    assert.equal(r.status, 502);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'CR_ERR_DEVICE_API_UNREACHABLE');
    const list = (await (await fetch(`${w.hub.url}/v1/devices`, { headers: w.auth })).json()) as { devices: Array<{ online: boolean }> };
    assert.equal(list.devices[0]!.online, true, 'the tunnel itself is fine');
  });
});
