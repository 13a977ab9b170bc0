import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { ConfigError } from '../config/load.js';
import { ErrorCode } from '../relay/protocol/frames.js';
import { Agent } from './agent.js';
import { Backoff, parseHubUrl, shuffle } from './connector.js';
import { DeviceApi, TestHub, agentConfig, makeAgent, stopAll, tempDir, waitUntil } from './test-hub.test.js';

describe('hub URLs and backoff', () => {
  test('hub URLs of every transport parse, with default ports and the /v1/agent path', () => {
    assert.deepEqual(parseHubUrl('tcp://hub.example'), { url: 'tcp://hub.example', transport: 'tcp', host: 'hub.example', port: 7443 });
    assert.deepEqual(parseHubUrl('tls://hub.example:9000'), { url: 'tls://hub.example:9000', transport: 'tls', host: 'hub.example', port: 9000 });
    assert.equal(parseHubUrl('ws://hub.example').wsUrl, 'ws://hub.example/v1/agent');
    assert.equal(parseHubUrl('wss://hub.example').port, 443);
    assert.equal(parseHubUrl('wss://hub.example/custom/path').wsUrl, 'wss://hub.example/custom/path');
    assert.equal(parseHubUrl('tcp://[::1]:7443').host, '::1');
  });

  test('a hub URL with another scheme or no host is a configuration error', () => {
    assert.throws(() => parseHubUrl('http://hub.example'), ConfigError);
    assert.throws(() => parseHubUrl('hub.example:7443'), ConfigError);
    assert.throws(() => parseHubUrl('tcp://hub.example/path'), ConfigError);
    assert.throws(() => new Agent(agentConfig(['--hub', 'mqtt://x', '--device-id', 'd', '--secret', 's'])), ConfigError);
    assert.throws(() => new Agent(agentConfig(['--hub', 'tcp://x', '--device-id', 'd', '--secret', 's', '--api', 'ftp://x'])), ConfigError);
    assert.throws(() => new Agent(agentConfig(['--hub', 'tcp://x', '--device-id', 'd', '--secret', 's', '--backoff-min-ms', '100', '--backoff-max-ms', '10'])), ConfigError);
  });

  test('backoff grows exponentially within its bounds, with jitter, and resets', () => {
    const b = new Backoff(100, 1000);
    const ceilings = [200, 400, 800, 1000, 1000, 1000];
    for (const ceiling of ceilings) {
      const d = b.next();
      assert.ok(d >= 100 && d <= ceiling, `${d} not in [100, ${ceiling}]`);
    }
    const samples = new Set(Array.from({ length: 50 }, () => b.next()));
    assert.ok(samples.size > 10, 'delays are jittered');
    b.reset();
    assert.ok(b.next() <= 200);
    const longest = b.longest();
    assert.ok(longest >= 900 && longest <= 1000);
  });

  test('shuffle returns every hub once, in varying order', () => {
    const items = ['a', 'b', 'c', 'd'];
    const orders = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const s = shuffle(items);
      assert.deepEqual([...s].sort(), items);
      orders.add(s.join(''));
    }
    assert.ok(orders.size > 5);
  });
});

describe('connecting to the hub', () => {
  let api: DeviceApi;
  let certs: { dir: string; cert: string; key: string; caFile: string } | undefined;
  const hubs: TestHub[] = [];

  before(async () => {
    api = await DeviceApi.start();
  });
  afterEach(async () => {
    await stopAll();
    await Promise.all(hubs.splice(0).map((h) => h.close()));
  });
  after(async () => {
    await api.close();
    if (certs) tempDirRemove(certs.dir);
  });

  async function startHub(opts: Parameters<typeof TestHub.start>[0] = {}): Promise<TestHub> {
    const hub = await TestHub.start(opts);
    hubs.push(hub);
    return hub;
  }

  function agentFor(hubUrls: string[], extra: string[] = [], timings = {}): ReturnType<typeof makeAgent> {
    return makeAgent([...hubUrls.flatMap((u) => ['--hub', u]), '--device-id', 'dev1', '--secret', 's', '--api', api.url, ...extra], timings);
  }

  function selfSignedCert(): { dir: string; cert: string; key: string; caFile: string } {
    if (certs) return certs;
    const dir = tempDir().path;
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    certs = { dir, cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8'), caFile: join(dir, 'cert.pem') };
    return certs;
  }

  test('the agent reconnects with backoff after the hub drops the connection', async () => {
    const hub = await startHub();
    const agent = agentFor([hub.url]);
    const connected: string[] = [];
    const disconnected: string[] = [];
    agent.on('connected', (u: string) => connected.push(u));
    agent.on('disconnected', (r: string) => disconnected.push(r));
    await agent.start();
    // Dropped once established (the WELCOME reached the agent), not during the handshake.
    await waitUntil(() => connected.length === 1, 5000, 'connected once');
    const second = hub.nextSession();
    hub.dropAll();
    await second;
    await waitUntil(() => connected.length === 2, 5000, 'connected twice');
    assert.deepEqual(connected, [hub.url, hub.url]);
    assert.equal(disconnected.length, 1);
    const reconnecting = agent.logs.find((l) => l.msg === 'reconnecting');
    assert.ok(reconnecting, 'logged the reconnect delay');
    assert.ok((reconnecting.inMs as number) >= 50);
    assert.equal(hub.hellos.length, 2);
    assert.equal(hub.hellos[0]!.bootId, hub.hellos[1]!.bootId, 'one bootId per agent process');
  });

  test('a hub that is down at start is retried until it comes up', async () => {
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const agent = agentFor([`tcp://127.0.0.1:${port}`]);
    await agent.start();
    await waitUntil(() => agent.logs.filter((l) => l.msg === 'hub unreachable').length >= 3, 5000, 'three failed attempts');
    const delays = agent.logs.filter((l) => l.msg === 'reconnecting').map((l) => l.inMs as number);
    assert.ok(delays.every((d) => d >= 50 && d <= 400), `delays within bounds: ${delays.join(',')}`);
  });

  test('with several hubs, a dead one is skipped and a live one is used', async () => {
    const hub = await startHub();
    const agent = agentFor(['tcp://127.0.0.1:1', hub.url]);
    const connected = once(agent, 'connected');
    await agent.start();
    assert.deepEqual(await connected, [hub.url]);
    assert.equal(agent.connectedTo, hub.url);
  });

  test('AUTH_FAILED is logged as an error and retried at the longest backoff, not an exit', async () => {
    const hub = await startHub({ check: () => ErrorCode.AUTH_FAILED });
    const agent = agentFor([hub.url], ['--backoff-min-ms', '20', '--backoff-max-ms', '300']);
    await agent.start();
    await waitUntil(() => hub.hellos.length >= 2, 5000, 'a second HELLO');
    const err = agent.logs.find((l) => l.level === 'error' && /credentials/.test(l.msg as string));
    assert.ok(err, 'an error line about the credentials');
    const delay = agent.logs.find((l) => l.msg === 'reconnecting')!.inMs as number;
    assert.ok(delay >= 270 && delay <= 300, `waited the longest backoff (${delay} ms)`);
    // Credentials fixed on the hub: the next attempt gets in.
    hub.check = undefined;
    await hub.nextSession();
  });

  test('TAKEN_OVER is logged and the agent comes back after a backoff', async () => {
    const hub = await startHub();
    const agent = agentFor([hub.url]);
    const first = hub.nextSession();
    await agent.start();
    const session = await first;
    const again = hub.nextSession();
    session.goaway(ErrorCode.TAKEN_OVER, 'another connection for this device took over');
    await again;
    assert.ok(agent.logs.some((l) => l.level === 'warn' && /took over/.test(l.msg as string)));
  });

  test('SHUTTING_DOWN lets the request in flight finish, then the agent reconnects', async () => {
    const hub = await startHub();
    let finish: (() => void) | undefined;
    api.routes.set('GET /long', (_req, res) => {
      res.writeHead(200);
      res.write('part 1,');
      finish = () => res.end('part 2');
    });
    const agent = agentFor([hub.url]);
    const first = hub.nextSession();
    await agent.start();
    const session = await first;
    const answer = hub.request('GET', '/long');
    await waitUntil(() => finish !== undefined, 5000, 'request at the REST service');
    session.goaway(ErrorCode.SHUTTING_DOWN, 'hub is shutting down');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(session.closed, false, 'kept open for the request in flight');
    const again = hub.nextSession();
    finish!();
    assert.equal((await answer).body.toString(), 'part 1,part 2');
    await again;
    assert.ok(agent.logs.some((l) => l.msg === 'disconnected' && /SHUTTING_DOWN/.test(l.reason as string)));
  });

  test('a hub that goes silent is detected from its missing answers, and the agent reconnects', async () => {
    const hub = await startHub({ welcome: { pingIntervalMs: 100, idleTimeoutMs: 400 } });
    const agent = agentFor([hub.url]);
    const first = hub.nextSession();
    await agent.start();
    await first;
    const again = hub.nextSession();
    hub.goSilent();
    await again;
    assert.ok(agent.logs.some((l) => l.msg === 'hub silent; dropping the connection'));
  });

  test('a connection reset while the device info is still being fetched is retried, not a crash', async () => {
    const resets = createServer((sock) => setTimeout(() => sock.resetAndDestroy(), 30)).listen(0, '127.0.0.1');
    await once(resets, 'listening');
    api.infoDelayMs = 200;
    try {
      const agent = agentFor([`tcp://127.0.0.1:${(resets.address() as { port: number }).port}`]);
      await agent.start();
      await waitUntil(() => agent.logs.filter((l) => l.msg === 'hub unreachable').length >= 2, 5000, 'two failed attempts');
      assert.match(agent.logs.find((l) => l.msg === 'hub unreachable')!.err as string, /read ECONNRESET|closed before HELLO/);
    } finally {
      api.infoDelayMs = 0;
      resets.close();
    }
  });

  test('a hub that never answers HELLO is abandoned after the handshake timeout', async () => {
    const silent = createServer(() => {}).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const url = `tcp://127.0.0.1:${(silent.address() as { port: number }).port}`;
    const agent = agentFor([url], [], { handshakeTimeoutMs: 200 });
    await agent.start();
    await waitUntil(() => agent.logs.some((l) => l.msg === 'tunnel handshake failed' && /WELCOME/.test(l.reason as string)), 5000, 'handshake timeout');
    await agent.stop();
    silent.close();
  });

  test('a REST service without device info still connects, with empty info', async () => {
    const hub = await startHub();
    const agent = agentFor([hub.url], ['--info-path', '/missing']);
    api.routes.set('GET /missing', (_req, res) => {
      res.writeHead(404);
      res.end();
    });
    const session = hub.nextSession();
    await agent.start();
    await session;
    assert.deepEqual(hub.hellos[0]!.info, {});
    assert.ok(agent.logs.some((l) => l.level === 'warn' && l.msg === 'device info unavailable; using the last known'));
  });

  test('ws:// hubs are reached on /v1/agent', async () => {
    const hub = await startHub({ transport: 'ws' });
    const agent = agentFor([hub.url]);
    const session = hub.nextSession();
    await agent.start();
    await session;
    const r = await hub.request('POST', '/over-ws', { body: 'x'.repeat(200_000) });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body.toString()).body.length, 200_000);
  });

  test('many large answers at once over ws:// stay within the hub websocket message limit', async () => {
    const hub = await startHub({ transport: 'ws' });
    const big = Buffer.alloc(1024 * 1024, 0x62);
    api.routes.set('GET /big', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(big);
    });
    const agent = agentFor([hub.url]);
    const connected = once(agent, 'connected');
    await agent.start();
    await connected;
    const results = await Promise.all(Array.from({ length: 16 }, () => hub.request('GET', '/big')));
    for (const r of results) assert.equal(r.body.length, big.length);
    assert.equal(hub.established.length, 1, 'the tunnel never dropped');
  });

  test('tls:// and wss:// hubs are verified against --tls-ca, and refused without it', async () => {
    const c = selfSignedCert();
    for (const transport of ['tls', 'wss'] as const) {
      const hub = await startHub({ transport, tls: { cert: c.cert, key: c.key } });
      const untrusted = agentFor([hub.url]);
      await untrusted.start();
      await waitUntil(() => untrusted.logs.some((l) => l.msg === 'hub unreachable'), 5000, `${transport} refused`);
      assert.match(untrusted.logs.find((l) => l.msg === 'hub unreachable')!.err as string, /self[- ]signed|certificate/i);
      await untrusted.stop();
      assert.equal(hub.hellos.length, 0);

      const trusted = agentFor([hub.url], ['--tls-ca', c.caFile]);
      const session = hub.nextSession();
      await trusted.start();
      await session;
      const r = await hub.request('GET', '/secure');
      assert.equal(r.status, 200);
      await trusted.stop();
    }
  });

  test('stop() lets a request in flight finish before closing the tunnel', async () => {
    const hub = await startHub();
    let finish: (() => void) | undefined;
    api.routes.set('GET /finishing', (_req, res) => {
      res.writeHead(200);
      res.write('started,');
      finish = () => res.end('finished');
    });
    const agent = agentFor([hub.url]);
    const connected = once(agent, 'connected');
    await agent.start();
    await connected;
    const answer = hub.request('GET', '/finishing');
    await waitUntil(() => finish !== undefined, 5000, 'request at the REST service');
    let stopped = false;
    const stopping = agent.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(stopped, false, 'stop waits for the request');
    finish!();
    assert.equal((await answer).body.toString(), 'started,finished');
    await stopping;
  });

  test('stop() says GOAWAY NO_ERROR, closes the tunnel and does not reconnect', async () => {
    const hub = await startHub();
    const agent = agentFor([hub.url]);
    const first = hub.nextSession();
    await agent.start();
    const session = await first;
    const goaway = once(session, 'goaway');
    const closed = once(session, 'close');
    await agent.stop();
    const [g] = (await goaway) as [{ code: number }];
    assert.equal(g.code, ErrorCode.NO_ERROR);
    await closed;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(hub.sessions.length, 1, 'did not reconnect after stop');
  });
});

function tempDirRemove(dir: string): void {
  execFileSync('rm', ['-rf', dir]);
}
