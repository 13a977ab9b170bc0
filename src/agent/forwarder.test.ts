import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import { DeviceApi, TestHub, header, makeAgent, responseOf, stopAll, waitUntil } from './test-hub.test.js';

describe('relayed requests', () => {
  let hub: TestHub;
  let api: DeviceApi;

  before(async () => {
    hub = await TestHub.start();
    api = await DeviceApi.start();
  });
  afterEach(async () => {
    await stopAll();
    api.routes.clear();
    api.seen.length = 0;
  });
  after(async () => {
    await hub.close();
    await api.close();
  });

  async function connectAgent(extra: string[] = [], apiUrl = api.url): Promise<ReturnType<typeof makeAgent>> {
    const agent = makeAgent(['--hub', hub.url, '--device-id', 'dev1', '--secret', 's3cret', '--api', apiUrl, ...extra]);
    const session = hub.nextSession();
    await agent.start();
    await session;
    return agent;
  }

  test('a relayed GET reaches the REST service and its answer comes back', async () => {
    await connectAgent();
    const r = await hub.request('GET', '/status?verbose=1', { headers: [['accept', 'application/json'], ['x-trace', 'abc']] });
    assert.equal(r.status, 200);
    assert.equal(header(r.headers, 'content-type'), 'application/json');
    assert.deepEqual(JSON.parse(r.body.toString()), { method: 'GET', url: '/status?verbose=1', body: '' });
    assert.equal(api.seen[0]!.headers['x-trace'], 'abc');
  });

  test('HELLO carries the device info from the REST service and the agent limits', async () => {
    const hello = once(hub, 'hello');
    await connectAgent(['--concurrency', '7']);
    const [h] = (await hello) as [Record<string, unknown>];
    assert.deepEqual(h.info, { model: 'test-device', firmware: '1.0' });
    assert.equal(h.deviceId, 'dev1');
    assert.equal(h.secret, 's3cret');
    assert.equal(h.maxStreams, 7);
    assert.equal(typeof h.bootId, 'string');
  });

  test('a relayed POST streams its body to the REST service', async () => {
    await connectAgent();
    const body = JSON.stringify({ on: true, level: 'x'.repeat(300_000) });
    const r = await hub.request('POST', '/lamp', { headers: [['content-type', 'application/json'], ['content-length', String(body.length)]], body });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body.toString()).body, body);
    assert.equal(api.seen[0]!.method, 'POST');
    assert.equal(api.seen[0]!.headers['content-type'], 'application/json');
  });

  test('hop-by-hop headers are removed, Host is the REST service, repeated headers stay repeated', async () => {
    await connectAgent();
    api.routes.set('GET /cookies', (_req, res) => {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.setHeader('connection', 'keep-alive, x-private');
      res.setHeader('x-private', 'drop me');
      res.end('ok');
    });
    await hub.request('GET', '/echo', {
      headers: [['connection', 'x-secret'], ['x-secret', '1'], ['keep-alive', 'timeout=5'], ['te', 'trailers'], ['upgrade', 'h2c'], ['host', 'hub.example'], ['x-multi', 'a'], ['x-multi', 'b']],
    });
    const seen = api.seen[0]!;
    assert.equal(seen.headers.host, new URL(api.url).host);
    for (const h of ['x-secret', 'keep-alive', 'te', 'upgrade']) assert.equal(seen.headers[h], undefined, h);
    assert.equal(seen.rawHeaders.filter((x) => x.toLowerCase() === 'x-multi').length, 2);

    const r = await hub.request('GET', '/cookies');
    assert.deepEqual(r.headers.filter(([k]) => k === 'set-cookie').map(([, v]) => v), ['a=1', 'b=2']);
    assert.equal(header(r.headers, 'connection'), undefined);
    assert.equal(header(r.headers, 'x-private'), undefined);
    assert.equal(header(r.headers, 'transfer-encoding'), undefined);
    for (const [k] of r.headers) assert.equal(k, k.toLowerCase());
  });

  test('the --api path prefix is kept in front of the relayed target', async () => {
    await connectAgent([], `${api.url}/base/`);
    const r = await hub.request('GET', '/x?y=1');
    assert.equal(JSON.parse(r.body.toString()).url, '/base/x?y=1');
  });

  test('a server-sent event stream flows event by event, not at the end', async () => {
    await connectAgent();
    let send: ((s: string) => void) | undefined;
    let end: (() => void) | undefined;
    api.routes.set('GET /events', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      send = (s) => res.write(s);
      end = () => res.end();
    });
    const s = hub.open('GET', '/events');
    const head = await responseOf(s);
    assert.equal(head.status, 200);
    assert.equal(header(head.headers, 'content-type'), 'text/event-stream');
    for (const n of [1, 2, 3]) {
      const chunk = once(s, 'data');
      send!(`data: event ${n}\n\n`);
      const [got] = (await chunk) as [Buffer];
      assert.equal(got.toString(), `data: event ${n}\n\n`);
    }
    const ended = once(s, 'end');
    end!();
    await ended;
  });

  test('HEAD and 204 answers end with the head', async () => {
    await connectAgent();
    api.routes.set('DELETE /thing', (_req, res) => {
      res.writeHead(204);
      res.end();
    });
    const r = await hub.request('DELETE', '/thing');
    assert.equal(r.status, 204);
    assert.equal(r.body.length, 0);
    const h = await hub.request('HEAD', '/anything');
    assert.equal(h.status, 200);
    assert.equal(h.body.length, 0);
  });

  test('a response head larger than the hub accepts becomes a 502, and the tunnel stays up', async () => {
    const small = await TestHub.start({ welcome: { maxFrameBytes: 1024 } });
    try {
      const agent = makeAgent(['--hub', small.url, '--device-id', 'dev1', '--secret', 's', '--api', api.url]);
      const connected = once(agent, 'connected');
      await agent.start();
      await connected;
      api.routes.set('GET /big-head', (_req, res) => {
        res.setHeader('x-big', 'y'.repeat(2000));
        res.end('body');
      });
      const r = await small.request('GET', '/big-head');
      assert.equal(r.status, 502);
      assert.match(JSON.parse(r.body.toString()).error.message, /frame limit/);
      assert.equal((await small.request('GET', '/still-up')).status, 200);
    } finally {
      await stopAll();
      await small.close();
    }
  });

  test('an unreachable REST service gives 502 CR_ERR_DEVICE_API_UNREACHABLE', async () => {
    const dead = createServer();
    dead.listen(0, '127.0.0.1');
    await once(dead, 'listening');
    const port = (dead.address() as { port: number }).port;
    await new Promise((r) => dead.close(r));
    await connectAgent(['--info-path', '/device'], `http://127.0.0.1:${port}`);
    const r = await hub.request('POST', '/lamp', { body: 'on' });
    assert.equal(r.status, 502);
    assert.equal(header(r.headers, 'content-type'), 'application/json');
    const body = JSON.parse(r.body.toString()) as { error: { code: string; status: number; message: string } };
    assert.equal(body.error.code, 'CR_ERR_DEVICE_API_UNREACHABLE');
    assert.equal(body.error.status, 502);
    assert.match(body.error.message, /ECONNREFUSED/);
  });

  test('a client that goes away aborts the local request', async () => {
    await connectAgent();
    let aborted = false;
    let arrived = false;
    api.routes.set('GET /slow', (req, res) => {
      arrived = true;
      res.on('close', () => {
        aborted = !res.writableEnded;
      });
      void req;
    });
    const s = hub.open('GET', '/slow');
    s.on('error', () => {});
    await waitUntil(() => arrived, 5000, 'request at the REST service');
    s.destroy(); // RESET CANCEL, as the hub does when its client disconnects
    await waitUntil(() => aborted, 5000, 'local request aborted');
  });

  test('a client that goes away mid-stream aborts the local response', async () => {
    await connectAgent();
    let closed = false;
    api.routes.set('GET /feed', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
      res.on('close', () => (closed = true));
    });
    const s = hub.open('GET', '/feed');
    s.on('error', () => {});
    await responseOf(s);
    await once(s, 'data');
    s.destroy();
    await waitUntil(() => closed, 5000, 'local response closed');
  });

  test('a REST service that does not answer in time gives 504 CR_ERR_DEVICE_TIMEOUT', async () => {
    await connectAgent(['--request-timeout-ms', '200']);
    api.routes.set('GET /never', () => {});
    const r = await hub.request('GET', '/never');
    assert.equal(r.status, 504);
    assert.equal(JSON.parse(r.body.toString()).error.code, 'CR_ERR_DEVICE_TIMEOUT');
  });

  test('an early answer stops the hub from sending the rest of a large body', async () => {
    await connectAgent();
    api.routes.set('POST /upload', (_req, res) => {
      res.writeHead(413, { 'content-type': 'text/plain' });
      res.end('too big');
    });
    const s = hub.open('POST', '/upload', { streaming: true });
    s.on('error', () => {});
    s.write(Buffer.alloc(64 * 1024));
    const head = await responseOf(s);
    assert.equal(head.status, 413);
    const parts: Buffer[] = [];
    for await (const c of s) parts.push(c as Buffer);
    assert.equal(Buffer.concat(parts).toString(), 'too big');
  });

  test('a GET on a kept-alive connection the service just closed is retried once; a POST is not', async () => {
    // Answers the first request of each connection and drops the connection on the second, the race
    // a keep-alive client meets when a server times out an idle connection just as it is reused.
    const flaky = createServer((sock) => {
      let n = 0;
      sock.on('data', () => {
        if (++n === 1) sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        else sock.destroy();
      });
    });
    flaky.listen(0, '127.0.0.1');
    await once(flaky, 'listening');
    await connectAgent([], `http://127.0.0.1:${(flaky.address() as { port: number }).port}`);
    try {
      assert.equal((await hub.request('GET', '/a')).status, 200);
      const again = await hub.request('GET', '/b');
      assert.equal(again.status, 200, 'retried on a fresh connection');
      const post = await hub.request('POST', '/c', { body: 'once only' });
      assert.equal(post.status, 502, 'a request with a body is never sent twice');
    } finally {
      flaky.close();
    }
  });

  test('requests beyond --concurrency wait for a free connection to the REST service', async () => {
    await connectAgent(['--concurrency', '4']);
    let active = 0;
    let peak = 0;
    api.routes.set('POST /work', (req, res) => {
      active++;
      peak = Math.max(peak, active);
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => setTimeout(() => {
        active--;
        res.end(Buffer.concat(parts));
      }, 20));
    });
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => hub.request('POST', '/work', { body: `body ${i}` })));
    results.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), `body ${i}`);
    });
    assert.equal(peak, 4);
  });

  test('a hub that ignores maxStreams gets REFUSED_STREAM past twice the limit', async () => {
    const agent = await connectAgent(['--concurrency', '2']);
    api.routes.set('GET /hold', () => {});
    const held = Array.from({ length: 4 }, () => hub.open('GET', '/hold'));
    for (const s of held) s.on('error', () => {});
    const extra = hub.open('GET', '/hold');
    const err = await new Promise<Error>((resolve) => extra.once('error', resolve));
    assert.match(err.message, /REFUSED_STREAM/);
    assert.ok(agent.logs.some((l) => l.msg === 'relayed request refused: too many at once'));
    for (const s of held) s.destroy();
  });
});
