import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TokenSigner } from '../../core/auth/token-signer.js';
import { Forwarder } from '../forwarder.js';
import { createLogger } from '../log.js';
import { LanServer } from './lan-server.js';
import { TokenChecker } from './token-check.js';
import { TrustStore } from './trust-store.js';

const log = createLogger({ level: 'silent' });

describe('LAN server against a real REST service', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cloudrest-lan-'));
  const signer = TokenSigner.open(join(dir, 'hub'));
  const token = signer.issue('u_1', 'owner@example.com', Date.now() + 3600_000);
  const writes: string[] = [];
  let service: Server;
  let servicePort: number;
  let lan: LanServer;
  let deadLan: LanServer;
  let hastyLan: LanServer;
  let base: string;

  before(async () => {
    service = createServer((req, res) => {
      if (req.url === '/never') return; // no answer at all
      let size = 0;
      req.on('data', (c: Buffer) => (size += c.length));
      req.on('end', () => {
        const status = req.url === '/reject' ? 400 : 200;
        res.writeHead(status, { 'content-type': 'application/json', connection: 'keep-alive, x-secret-hop', 'x-secret-hop': '1' });
        res.end(JSON.stringify({ method: req.method, url: req.url, size, auth: req.headers.authorization ?? null }));
      });
    });
    service.listen(0, '127.0.0.1');
    await once(service, 'listening');
    servicePort = (service.address() as AddressInfo).port;
    const trust = await TrustStore.open(join(dir, 'state'), 100, log);
    trust.addKeys([signer.publicKey]);
    const checker = new TokenChecker(trust, () => 'owner@example.com');
    const make = (api: string, requestTimeoutMs = 30_000): LanServer => new LanServer(
      { host: '127.0.0.1', port: 0, deviceId: 'd_1', maxConnections: 64 },
      { client: new Forwarder({ api, concurrency: 4, requestTimeoutMs, log }).client, checker, log, onWrite: (t) => writes.push(t) },
    );
    lan = make(`http://127.0.0.1:${servicePort}`);
    await lan.start();
    base = `http://127.0.0.1:${lan.port}`;
    // A REST service that is not running (a closed port).
    const closed = createServer().listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const closedPort = (closed.address() as AddressInfo).port;
    closed.close();
    deadLan = make(`http://127.0.0.1:${closedPort}`);
    await deadLan.start();
    hastyLan = make(`http://127.0.0.1:${servicePort}`, 300);
    await hastyLan.start();
  });

  after(async () => {
    await lan.close();
    await deadLan.close();
    await hastyLan.close();
    service.closeAllConnections();
    service.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const auth = { authorization: `Bearer ${token}` };

  test('streams a 4 MiB request body to the service and its answer back, without the token or hop-by-hop fields', async () => {
    const r = await fetch(`${base}/upload?x=1`, { method: 'POST', headers: auth, body: Buffer.alloc(4 * 1024 * 1024, 7) });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-secret-hop'), null, 'a field the Connection header names is hop-by-hop');
    assert.deepEqual(await r.json(), { method: 'POST', url: '/upload?x=1', size: 4 * 1024 * 1024, auth: null });
  });

  test('reports successful writes (and only those) so hubs drop their cached copies', async () => {
    writes.length = 0;
    for (const [method, path] of [['PUT', '/a'], ['PATCH', '/b?q=1'], ['DELETE', '/c'], ['GET', '/d'], ['PUT', '/reject']] as const) {
      const r = await fetch(`${base}${path}`, { method, headers: auth, ...(method === 'GET' || method === 'DELETE' ? {} : { body: 'x' }) });
      await r.arrayBuffer();
    }
    assert.deepEqual(writes, ['/a', '/b?q=1', '/c']);
  });

  test('answers 502 when the REST service is down and 504 when it sends no answer in time, with the hub\'s codes', async () => {
    const down = await fetch(`http://127.0.0.1:${deadLan.port}/x`, { headers: auth });
    assert.equal(down.status, 502);
    assert.equal(((await down.json()) as { error: { code: string } }).error.code, 'CR_ERR_DEVICE_API_UNREACHABLE');
    const slow = await fetch(`http://127.0.0.1:${hastyLan.port}/never`, { headers: auth });
    assert.equal(slow.status, 504);
    assert.equal(((await slow.json()) as { error: { code: string } }).error.code, 'CR_ERR_DEVICE_TIMEOUT');
    // The server is still fine afterwards.
    assert.equal((await fetch(`${base}/ok`, { headers: auth })).status, 200);
  });

  test('refuses before reading the body: a large upload without a token gets 401 at once', async () => {
    const r = await fetch(`${base}/upload`, { method: 'POST', body: Buffer.alloc(1024 * 1024) });
    assert.equal(r.status, 401);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'CR_ERR_UNAUTHORIZED');
  });
});
