/**
 * A scaled-out hub of real processes (docs/scale-out.md): two fronts and two edges on one Redis (a
 * key prefix of this run) and one PostgreSQL database (of this run), each node with its own --data.
 * Agents list both edges; clients go through either front.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SseClient } from './support/sse-client.js';
import { testPostgres, testRedis, type TestDatabase, type TestRedis } from './support/services.js';
import { cli, curl, curlGet, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';
import { until } from './support/until.js';

const SECRET = 'e2e-cluster-secret-0123456789';
const EMAIL = 'owner@example.com';
const PASSWORD = 'correct horse battery';
/** Two requests in flight per device, one queued: the third waits, the fourth is refused. */
const DEVICE_LIMITS = ['--max-inflight-per-device', '2', '--max-queued-per-device', '1'];


describe('a cluster of two fronts and two edges', () => {
  let redis: TestRedis;
  let db: TestDatabase;
  const dirs: Array<ReturnType<typeof tempDir>> = [];
  let front2Data: string;
  let edgeA: HubProc;
  let edgeB: HubProc;
  let front1: HubProc;
  let front2: HubProc;
  let device: Proc & { url: string };
  const agents: Proc[] = [];
  const devices: Record<'d1' | 'd2' | 'd3', { id: string; secret: string }> = {} as never;
  let token: string;
  const tunnel = (h: HubProc) => `tcp://127.0.0.1:${h.tunnelPort}`;

  const node = (role: 'front' | 'edge', id: string, extra: string[] = []) => {
    const dir = tempDir();
    dirs.push(dir);
    if (id === 'front-2') front2Data = dir.path;
    return startHub(dir.path, [
      '--role', role, '--node-id', id, '--store', db.url, '--redis', redis.url, '--redis-key-prefix', redis.keyPrefix,
      '--cluster-secret', SECRET, '--internal-port', '0', '--node-ttl-ms', '1500', '--no-mqtt', ...extra,
    ]);
  };
  const get = (front: HubProc, id: string, path = 'temperature', maxSeconds = 5) => curlGet(`${front.url}/v1/devices/${id}/api/${path}`, token, maxSeconds);

  before(async () => {
    [redis, db] = await Promise.all([testRedis(), testPostgres()]);
    await cli(['users', 'add', '--store', db.url, '--email', EMAIL, '--password', PASSWORD]);
    for (const k of ['d1', 'd2', 'd3'] as const) {
      devices[k] = JSON.parse(await cli(['devices', 'add', '--store', db.url, '--name', k, '--email', EMAIL, '--json'])) as { id: string; secret: string };
    }
    // front2's admin socket (under its --data) is where `cloudrest devices revoke` tells the cluster.
    [edgeA, edgeB, front1, front2, device] = await Promise.all([
      node('edge', 'edge-a', DEVICE_LIMITS),
      node('edge', 'edge-b', DEVICE_LIMITS),
      node('front', 'front-1'),
      node('front', 'front-2'),
      startDevice(EMAIL),
    ]);
    const agent = (id: keyof typeof devices, hubs: HubProc[], extra: string[] = []) =>
      startAgent({ hub: hubs.map(tunnel), deviceId: devices[id].id, secret: devices[id].secret, api: device.url, extra });
    agents.push(...await Promise.all([
      agent('d1', [edgeA, edgeB]),
      agent('d2', [edgeB, edgeA], ['--notify-port', '0']),
      agent('d3', [edgeA]),
    ]));
    token = await login(front1.url, EMAIL, PASSWORD);
  });
  after(async () => {
    await Promise.all([...agents.map((a) => a.stop()), device?.stop()]);
    await Promise.all([edgeA, edgeB, front1, front2].map((h) => h?.stop()));
    for (const d of dirs) d.remove();
    await Promise.all([redis?.drop(), db?.drop()]);
  });

  it('says its role, node id and internal URL at start; an edge serves no client route and a front takes no agent', async () => {
    const listening = edgeA.logs('hub listening')[0]!;
    assert.equal(listening.role, 'edge');
    assert.equal(listening.nodeId, 'edge-a');
    assert.match(String(listening.internalUrl), /^tcp:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(front1.logs('hub listening')[0]!.role, 'front');
    assert.equal(front1.tunnelPort, undefined, 'a front opens no tunnel port');
    const onEdge = await curl(['-w', '\n%{http_code}', `${edgeA.url}/v1/devices`]);
    assert.match(onEdge.stdout, /CR_ERR_WRONG_NODE_ROLE[\s\S]*\n421$/);
    assert.match((await curl(['-w', '\n%{http_code}', `${edgeA.url}/healthz`])).stdout, /\n200$/);
    const agentOnFront = await curl(['-i', '-H', 'connection: upgrade', '-H', 'upgrade: websocket', '-H', 'sec-websocket-version: 13', '-H', 'sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==', `${front1.url}/v1/agent`]);
    assert.match(agentOnFront.stdout, /^HTTP\/1\.1 421[\s\S]*CR_ERR_WRONG_NODE_ROLE/);
    for (const h of [edgeA, edgeB, front1, front2]) assert.ok(!h.lines.some((l) => l.includes(SECRET)), 'the cluster secret is never logged');
  });

  it('relays through either front to devices on either edge, bodies both ways', async () => {
    for (const front of [front1, front2]) {
      for (const id of [devices.d1.id, devices.d2.id]) {
        const r = await get(front, id);
        assert.equal(r.status, 200, `${front.url} → ${id}: ${r.body}`);
      }
    }
    const body = randomBytes(20 * 1024 * 1024);
    const file = join(dirs[0]!.path, 'upload.bin');
    writeFileSync(file, body);
    const up = await curl(['-m', '20', '-H', `Authorization: Bearer ${token}`, '-H', 'content-type: application/octet-stream', '--data-binary', `@${file}`, `${front2.url}/v1/devices/${devices.d1.id}/api/sink`]);
    assert.deepEqual(JSON.parse(up.stdout), { size: body.length, sha256: createHash('sha256').update(body).digest('hex') });
    const big = await curl(['-m', '20', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', '-H', `Authorization: Bearer ${token}`, `${front1.url}/v1/devices/${devices.d2.id}/api/bytes?n=${20 * 1024 * 1024}`]);
    assert.equal(big.stdout, `200 ${20 * 1024 * 1024}`);
  });

  it("answers 429 through a front when the device's queue on its edge is full, as one hub does", async () => {
    // Six slow requests through both fronts at once (different URLs: the response cache shares nothing):
    // two go in flight at the device's edge, one waits in its queue, the other three are refused.
    const auth = { authorization: `Bearer ${token}` };
    const answers = await Promise.all([1, 2, 3, 4, 5, 6].map(async (i) => {
      const r = await fetch(`${(i % 2 ? front1 : front2).url}/v1/devices/${devices.d1.id}/api/slow?ms=2000&i=${i}`, { headers: auth });
      return { status: r.status, body: await r.text(), retryAfter: r.headers.get('retry-after') };
    }));
    const refused = answers.filter((a) => a.status === 429);
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 200, 200, 429, 429, 429], 'two in flight and one queued are served');
    for (const r of refused) {
      assert.match(r.body, /CR_ERR_TOO_MANY_REQUESTS/);
      assert.equal(r.retryAfter, '1');
    }
  });

  it("streams a device's notifications over SSE through either front", async () => {
    const notifyPort = (await agents[1]!.waitForLog('notify listening', (o) => typeof o.port === 'number')).port as number;
    const streams = await Promise.all([front1, front2].map((f) => SseClient.open(`${f.url}/v1/devices/${devices.d2.id}/events`, { authorization: `Bearer ${token}` })));
    for (const s of streams) await s.until((ev) => ev.some((e) => e.event === 'status'));
    const r = await fetch(`http://127.0.0.1:${notifyPort}/notify`, { method: 'POST', body: 'hello from the edge\n' });
    assert.equal(r.status, 202);
    for (const s of streams) {
      await s.until(() => s.of('notification').length > 0);
      assert.equal((JSON.parse(s.of('notification')[0]!.data) as { message: string }).message, 'hello from the edge');
      s.close();
    }
  });

  it('routes a device that connects to the other edge there at once; the first edge drops its tunnel', async () => {
    // d2 is on edge B; a second connection of it to edge A takes over.
    const moved = await startAgent({ hub: tunnel(edgeA), deviceId: devices.d2.id, secret: devices.d2.secret, api: device.url });
    try {
      await edgeB.waitForLog('device tunnel taken over by another node', (o) => o.deviceId === devices.d2.id);
      assert.equal((await get(front1, devices.d2.id)).status, 200);
    } finally {
      await moved.stop();
    }
    // Its own agent comes back (to edge B, first in its list) and answers again.
    await until(async () => ((await get(front2, devices.d2.id)).status === 200 ? true : undefined), 15_000, 'd2 back');
  });

  it("revokes a device across nodes: the CLI tells one front, and the edge holding the tunnel closes it", async () => {
    assert.equal((await get(front1, devices.d3.id)).status, 200);
    const out = await cli(['devices', 'revoke', devices.d3.id, '--store', db.url, '--data', front2Data]);
    assert.match(out, /its tunnel on the running hub was closed/);
    await edgeA.waitForLog('device tunnel closed by the hub', (o) => o.deviceId === devices.d3.id);
    const r = await until(async () => {
      const x = await get(front1, devices.d3.id);
      return x.status === 503 ? x : undefined;
    }, 10_000, 'd3 offline');
    assert.match(r.body, /CR_ERR_DEVICE_OFFLINE/);
  });

  it('kill -9 of an edge: its devices, whose agents list both edges, answer through a front again', async () => {
    // d1 is on edge A (first in its list); d2 may be on either after the take-over above: both must answer after.
    assert.equal((await get(front2, devices.d1.id)).status, 200);
    const started = Date.now();
    edgeA.child.kill('SIGKILL');
    const answers = async (id: string) => ((await get(front2, id)).status === 200 ? true : undefined);
    await until(async () => ((await answers(devices.d1.id)) && (await answers(devices.d2.id))), 15_000, 'd1 and d2 answering through edge B');
    const ms = Date.now() - started;
    process.stdout.write(`# failover after kill -9 of an edge: ${ms} ms\n`);
    assert.ok(ms < 15_000);
  });

  it('a front killed mid-stream: the client gets an error, and the other front carries on', async () => {
    const n = 200 * 1024 * 1024;
    const res = await fetch(`${front1.url}/v1/devices/${devices.d2.id}/api/bytes?n=${n}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let got = (await reader.read()).value?.length ?? 0;
    front1.child.kill('SIGKILL');
    await assert.rejects(async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        got += value.length;
      }
    }, 'the cut transfer is an error, not a short body');
    assert.ok(got < n);
    assert.equal((await get(front2, devices.d2.id)).status, 200);
  });
});
