import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { ErrorCode } from './frames.js';
import type { RequestHead, ResponseHead } from './heads.js';
import { TunnelSession, type Hello, type Welcome } from './session.js';
import { StreamResetError, type TunnelStream } from './stream.js';
import { openTunnel, socketPair } from './tunnel-pair.test.js';

/** The agent side of a device: `handler` answers every relayed request. */
function serve(agent: TunnelSession, handler: (s: TunnelStream, head: RequestHead) => void | Promise<void>): void {
  agent.on('stream', (s: TunnelStream) => {
    s.on('error', () => {}); // resets are asserted where they matter
    void handler(s, s.request!);
  });
}

/**
 * Reads a body to its end. Not with `for await`: Node's async iterator destroys a Duplex when the
 * readable side ends, and destroying a TunnelStream before the answer is sent cancels the exchange.
 */
function readAll(s: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });
}

async function fetchVia(hub: TunnelSession, head: RequestHead, body?: Buffer): Promise<{ head: ResponseHead; body: Buffer }> {
  const s = hub.request(head, body === undefined);
  if (body !== undefined) s.end(body);
  const [res] = (await once(s, 'response')) as [ResponseHead];
  return { head: res, body: await readAll(s) };
}

/** Yields `total` bytes of a repeatable pattern in `chunk`-sized pieces, as a Readable with backpressure. */
function patternSource(total: number, chunk = 64 * 1024): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk, total - sent);
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = (sent + i) % 251;
      sent += n;
      this.push(b);
    },
  });
}

/** A consumer that takes its time over every chunk and hashes what it got. */
function slowSink(delayMs: number): Writable & { digest(): string; bytes: number } {
  const hash = createHash('sha256');
  const sink = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      sink.bytes += chunk.length;
      setTimeout(cb, delayMs);
    },
  }) as Writable & { digest(): string; bytes: number };
  sink.bytes = 0;
  sink.digest = () => hash.digest('hex');
  return sink;
}

async function digestOf(src: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of src) hash.update(c as Buffer);
  return hash.digest('hex');
}

/** Records the most a TunnelStream ever held unread: what flow control must bound. */
function trackBuffered(s: TunnelStream): { max: number } {
  const seen = { max: 0 };
  const push = s.push.bind(s);
  s.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    const r = push(chunk, encoding);
    seen.max = Math.max(seen.max, s.readableLength);
    return r;
  };
  return seen;
}

test('handshake: the agent says HELLO, the hub answers WELCOME, and each side adopts the other’s limits', async (t) => {
  const [hubSocket, agentSocket] = await socketPair(t);
  const hub = new TunnelSession(hubSocket, 'hub', { maxFrameBytes: 32_768, windowBytes: 100_000 });
  const agent = new TunnelSession(agentSocket, 'agent', { maxFrameBytes: 16_384, windowBytes: 50_000 });
  const hello: Hello = {
    version: 1, deviceId: 'thermostat-7', secret: 'k', bootId: 'b1', info: { fw: '1.2' }, maxFrameBytes: 16_384, windowBytes: 50_000, maxStreams: 8,
  };
  const gotHello = once(hub, 'hello');
  agent.sendHello(hello);
  const [h] = (await gotHello) as [Hello];
  assert.deepEqual(h, hello);
  assert.equal(hub.established, false, 'the hub is not established until it has sent WELCOME');

  const welcome: Welcome = { version: 1, pingIntervalMs: 5000, idleTimeoutMs: 15_000, maxFrameBytes: 32_768, windowBytes: 100_000 };
  const gotWelcome = once(agent, 'welcome');
  hub.sendWelcome(welcome, h);
  assert.deepEqual((await gotWelcome)[0], welcome);
  assert.ok(hub.established && agent.established);
  assert.equal(hub.peerMaxFrameBytes, 16_384);
  assert.equal(hub.peerWindowBytes, 50_000);
  assert.equal(agent.peerMaxFrameBytes, 32_768);
  assert.equal(agent.peerWindowBytes, 100_000);
});

test('a GET without a body is answered with status, headers and body', async (t) => {
  const { hub, agent } = await openTunnel(t);
  serve(agent, async (s, head) => {
    assert.deepEqual(head, { method: 'GET', target: '/device?x=1', headers: [['accept', 'application/json'], ['host', 'device']] });
    assert.deepEqual(await readAll(s), Buffer.alloc(0), 'a GET has an empty, already ended body');
    s.respond({ status: 200, headers: [['content-type', 'application/json'], ['set-cookie', 'a=1'], ['set-cookie', 'b=2']] });
    s.end('{"ok":true}');
  });
  const res = await fetchVia(hub, { method: 'GET', target: '/device?x=1', headers: [['accept', 'application/json'], ['host', 'device']] });
  assert.equal(res.head.status, 200);
  assert.deepEqual(res.head.headers, [['content-type', 'application/json'], ['set-cookie', 'a=1'], ['set-cookie', 'b=2']]);
  assert.equal(res.body.toString(), '{"ok":true}');
  await sleep(10);
  assert.equal(hub.activeStreams, 0);
  assert.equal(agent.activeStreams, 0);
});

test('a POST body reaches the device and its response body comes back', async (t) => {
  const { hub, agent } = await openTunnel(t);
  serve(agent, async (s) => {
    const body = await readAll(s);
    s.respond({ status: 201, headers: [['content-type', 'text/plain']] });
    s.end(`got ${body.length} bytes: ${body.toString()}`);
  });
  const res = await fetchVia(hub, { method: 'POST', target: '/leds', headers: [['content-type', 'text/plain']] }, Buffer.from('on'));
  assert.equal(res.head.status, 201);
  assert.equal(res.body.toString(), 'got 2 bytes: on');
});

test('a response with END_STREAM on its head has an empty body', async (t) => {
  const { hub, agent } = await openTunnel(t);
  serve(agent, (s) => s.respond({ status: 204, headers: [] }, true));
  const res = await fetchVia(hub, { method: 'DELETE', target: '/leds/1', headers: [] });
  assert.equal(res.head.status, 204);
  assert.equal(res.body.length, 0);
});

test('100 concurrent requests on one tunnel each get their own answer', async (t) => {
  const { hub, agent } = await openTunnel(t);
  let open = 0;
  let maxOpen = 0;
  serve(agent, async (s, head) => {
    open++;
    maxOpen = Math.max(maxOpen, open);
    const body = await readAll(s);
    await sleep(Math.random() * 20); // answer out of order
    s.respond({ status: 200, headers: [['x-target', head.target]] });
    s.end(Buffer.concat([Buffer.from(`${head.target}:`), body]));
    open--;
  });
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) =>
    fetchVia(hub, { method: i % 2 ? 'POST' : 'GET', target: `/item/${i}`, headers: [] }, i % 2 ? Buffer.from(`body${i}`) : undefined)));
  results.forEach((r, i) => {
    assert.equal(r.head.headers[0]![1], `/item/${i}`);
    assert.equal(r.body.toString(), `/item/${i}:${i % 2 ? `body${i}` : ''}`);
  });
  assert.equal(maxOpen, 100, 'all 100 were open on the device at once');
  await sleep(10);
  assert.equal(hub.activeStreams, 0);
  assert.equal(agent.activeStreams, 0);
});

test('a 20 MB upload to a slow device never has the device buffer more than one window', async (t) => {
  const windowBytes = 256 * 1024;
  const maxFrameBytes = 16 * 1024;
  const { hub, agent } = await openTunnel(t, { agentWindowBytes: windowBytes, agentMaxFrameBytes: maxFrameBytes });
  const total = 20 * 1024 * 1024;
  let buffered = { max: 0 };
  const sink = slowSink(1);
  serve(agent, async (s) => {
    buffered = trackBuffered(s);
    await pipeline(s, sink);
    s.respond({ status: 200, headers: [] });
    s.end(sink.digest());
  });
  const s = hub.request({ method: 'PUT', target: '/firmware', headers: [] }, false);
  const sent = patternSource(total);
  const expected = digestOf(patternSource(total));
  await pipeline(sent, s);
  await once(s, 'response');
  assert.equal((await readAll(s)).toString(), await expected);
  assert.equal(sink.bytes, total);
  assert.ok(buffered.max >= windowBytes / 2, `device buffered only ${buffered.max} bytes: the window never held the hub back`);
  assert.ok(buffered.max <= windowBytes + maxFrameBytes, `device buffered ${buffered.max} bytes`);
});

test('a 20 MB body echoed through a slow client is bounded by the window in both directions', async (t) => {
  const windowBytes = 128 * 1024;
  const maxFrameBytes = 16 * 1024;
  const { hub, agent } = await openTunnel(t, {
    hubWindowBytes: windowBytes, agentWindowBytes: windowBytes, hubMaxFrameBytes: maxFrameBytes, agentMaxFrameBytes: maxFrameBytes,
  });
  const total = 20 * 1024 * 1024;
  let atDevice = { max: 0 };
  serve(agent, async (s) => {
    atDevice = trackBuffered(s);
    s.respond({ status: 200, headers: [['content-type', 'application/octet-stream']] });
    await pipeline(s, s); // echo: the device reads only as fast as the hub takes the response
  });
  const s = hub.request({ method: 'POST', target: '/echo', headers: [] }, false);
  const atHub = trackBuffered(s);
  const expected = digestOf(patternSource(total));
  const upload = pipeline(patternSource(total), s);
  await once(s, 'response');
  const sink = slowSink(1);
  await Promise.all([upload, pipeline(s, sink)]);
  assert.equal(sink.bytes, total);
  assert.equal(sink.digest(), await expected);
  for (const [side, seen] of [['hub', atHub], ['device', atDevice]] as const) {
    assert.ok(seen.max >= windowBytes / 2, `${side} buffered only ${seen.max} bytes: the window never held the sender back`);
    assert.ok(seen.max <= windowBytes + maxFrameBytes, `${side} buffered ${seen.max} bytes`);
  }
});

test('small windows still carry large bodies to a reader that iterates', { timeout: 20_000 }, async (t) => {
  // Regression: with windows under ~24 KiB credit was never returned and both sides waited forever.
  for (const windowBytes of [1024, 4096, 16_384]) {
    const { hub, agent } = await openTunnel(t, { hubWindowBytes: windowBytes, agentWindowBytes: windowBytes });
    serve(agent, async (s) => {
      const body = await readAll(s);
      s.respond({ status: 200, headers: [] });
      s.end(Buffer.concat([body, body]));
    });
    const s = hub.request({ method: 'POST', target: '/double', headers: [] }, false);
    s.end(Buffer.alloc(100_000, 7));
    await once(s, 'response');
    let received = 0;
    for await (const chunk of s) received += (chunk as Buffer).length; // the request is sent: iterating is safe here
    assert.equal(received, 200_000, `window ${windowBytes}`);
  }
});

test('a client that goes away mid-upload cancels the request on the device', async (t) => {
  const { hub, agent } = await openTunnel(t);
  const deviceSaw = new Promise<unknown>((resolve) => {
    agent.on('stream', (s: TunnelStream) => {
      s.on('error', resolve);
      s.resume();
    });
  });
  const s = hub.request({ method: 'POST', target: '/upload', headers: [] }, false);
  s.write(Buffer.alloc(1000));
  await sleep(20);
  s.destroy();
  const err = await deviceSaw;
  assert.ok(err instanceof StreamResetError);
  assert.equal(err.code, ErrorCode.CANCEL);
  await sleep(10);
  assert.equal(agent.activeStreams, 0);
  assert.equal(hub.activeStreams, 0);
});

test('a client that goes away mid-download stops the device sending', async (t) => {
  const { hub, agent } = await openTunnel(t);
  let deviceStream: TunnelStream | undefined;
  serve(agent, (s) => {
    deviceStream = s;
    s.respond({ status: 200, headers: [] });
    s.write(Buffer.alloc(1000));
  });
  const s = hub.request({ method: 'GET', target: '/stream', headers: [] }, true);
  await once(s, 'response');
  const deviceErr = once(deviceStream!, 'error').catch((e: unknown) => [e]);
  s.destroy();
  const [err] = (await deviceErr) as [unknown];
  assert.ok(err instanceof StreamResetError);
  assert.equal(err.code, ErrorCode.CANCEL, 'the device learns the client cancelled and can stop its work');
  await sleep(10);
  assert.equal(agent.activeStreams, 0);
  assert.equal(hub.activeStreams, 0);
  agent.removeAllListeners('stream');
  serve(agent, (d) => d.respond({ status: 200, headers: [] }, true));
  assert.equal((await fetchVia(hub, { method: 'GET', target: '/still-up', headers: [] })).head.status, 200);
});

test('a device that resets a request fails the hub stream with the device’s code', async (t) => {
  const { hub, agent } = await openTunnel(t);
  agent.on('stream', (s: TunnelStream) => {
    s.on('error', () => {});
    s.destroy(new StreamResetError(ErrorCode.REFUSED_STREAM));
  });
  const s = hub.request({ method: 'GET', target: '/busy', headers: [] }, true);
  const [err] = (await once(s, 'error').catch((e: unknown) => [e])) as [unknown];
  assert.ok(err instanceof StreamResetError);
  assert.equal(err.code, ErrorCode.REFUSED_STREAM);
  await sleep(10);
  assert.equal(hub.activeStreams, 0);
});

test('a RESET after a complete response keeps the response and only stops the upload', async (t) => {
  const { hub, agent } = await openTunnel(t);
  serve(agent, (s) => {
    s.respond({ status: 413, headers: [] }, true);
    s.destroy(); // not interested in the rest of the body
  });
  const s = hub.request({ method: 'POST', target: '/big', headers: [] }, false);
  s.on('error', (err) => assert.fail(err));
  s.write(Buffer.alloc(100));
  const [head] = (await once(s, 'response')) as [ResponseHead];
  assert.equal(head.status, 413);
  assert.equal((await readAll(s)).length, 0);
  await sleep(10);
  assert.equal(hub.activeStreams, 0);
});

test('PING is answered by a PONG with the same 8 bytes', async (t) => {
  const { hub, agent } = await openTunnel(t);
  const payload = Buffer.from('0102030405060708', 'hex');
  const pinged = once(hub, 'ping');
  const ponged = once(agent, 'pong');
  agent.sendPing(payload);
  assert.deepEqual((await pinged)[0], payload);
  assert.deepEqual((await ponged)[0], payload);
});

test('a notification reaches the hub and its acknowledgement reaches the agent', async (t) => {
  const { hub, agent } = await openTunnel(t);
  hub.on('notify', (seq: number) => hub.sendNotifyAck(seq));
  const got = once(hub, 'notify');
  const acked = once(agent, 'notifyAck');
  agent.sendNotify(42, Buffer.from('{"temp":21.5}'));
  const [seq, text] = (await got) as [number, Buffer];
  assert.equal(seq, 42);
  assert.equal(text.toString(), '{"temp":21.5}');
  assert.equal((await acked)[0], 42);
});

test('a graceful GOAWAY lets the request in flight finish, refuses new ones, then closes', async (t) => {
  const { hub, agent } = await openTunnel(t);
  serve(agent, async (s) => {
    await sleep(50);
    s.respond({ status: 200, headers: [] });
    s.end('late but complete');
  });
  const inFlight = fetchVia(hub, { method: 'GET', target: '/slow', headers: [] });
  await sleep(10);
  const agentGoaway = once(agent, 'goaway');
  const closed = Promise.all([once(hub, 'close'), once(agent, 'close')]);
  hub.goaway(ErrorCode.SHUTTING_DOWN, 'hub is shutting down');
  assert.ok(hub.draining);
  assert.throws(() => hub.request({ method: 'GET', target: '/new', headers: [] }, true),
    (err: unknown) => err instanceof StreamResetError && err.code === ErrorCode.REFUSED_STREAM);
  assert.deepEqual((await agentGoaway)[0], { lastStream: 1, code: ErrorCode.SHUTTING_DOWN, reason: 'hub is shutting down' });
  assert.equal((await inFlight).body.toString(), 'late but complete');
  await closed;
  assert.ok(hub.closed && agent.closed);
});

test('a tunnel taken over by a newer connection is told TAKEN_OVER and closes once idle', async (t) => {
  const { hub, agent } = await openTunnel(t);
  const gotGoaway = once(agent, 'goaway');
  const agentClosed = once(agent, 'close');
  hub.goaway(ErrorCode.TAKEN_OVER, 'another connection for this device took over');
  assert.equal(((await gotGoaway)[0] as { code: number }).code, ErrorCode.TAKEN_OVER);
  const [err] = (await agentClosed) as [unknown];
  assert.ok(err instanceof StreamResetError && err.code === ErrorCode.TAKEN_OVER, 'the agent learns why from the close event');
});

test('an agent refused with AUTH_FAILED gets the reason and a close event carrying the code', async (t) => {
  const [hubSocket, agentSocket] = await socketPair(t);
  const hub = new TunnelSession(hubSocket, 'hub', { maxFrameBytes: 65_536, windowBytes: 65_536 });
  const agent = new TunnelSession(agentSocket, 'agent', { maxFrameBytes: 65_536, windowBytes: 65_536 });
  hub.on('hello', () => hub.close(ErrorCode.AUTH_FAILED, 'unknown device id or wrong secret'));
  const gotGoaway = once(agent, 'goaway');
  const closed = once(agent, 'close');
  agent.sendHello({ version: 1, deviceId: 'nobody', secret: 'x', bootId: 'b', info: {}, maxFrameBytes: 65_536, windowBytes: 65_536, maxStreams: 1 });
  assert.deepEqual((await gotGoaway)[0], { lastStream: 0, code: ErrorCode.AUTH_FAILED, reason: 'unknown device id or wrong secret' });
  const [err] = (await closed) as [unknown];
  assert.ok(err instanceof StreamResetError);
  assert.equal(err.code, ErrorCode.AUTH_FAILED);
  assert.equal(agent.established, false);
});

test('when the connection drops, every open stream on both sides fails', async (t) => {
  const { hub, agent, agentSocket } = await openTunnel(t);
  const deviceStream = new Promise<TunnelStream>((resolve) => agent.on('stream', resolve));
  const s = hub.request({ method: 'GET', target: '/hang', headers: [] }, true);
  const d = await deviceStream;
  const hubErr = once(s, 'error').catch((e: unknown) => [e]);
  const devErr = once(d, 'error').catch((e: unknown) => [e]);
  agentSocket.destroy();
  assert.ok(((await hubErr) as [unknown])[0] instanceof Error);
  assert.ok(((await devErr) as [unknown])[0] instanceof Error);
  assert.ok(hub.closed || (await once(hub, 'close')));
  assert.equal(hub.activeStreams, 0);
  assert.throws(() => hub.request({ method: 'GET', target: '/', headers: [] }, true), StreamResetError);
});
