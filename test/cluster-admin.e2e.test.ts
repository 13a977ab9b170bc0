/**
 * What a scaled-out hub (two fronts, two edges, real processes) shares through Redis besides routing
 * (issue 13): a revocation from a CLI that has only --store and --redis, failed-login limits counted
 * once across fronts, and Redis restarted empty under load without any device being disconnected. Its
 * own Redis (privateRedis): this file restarts it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { privateRedis, testPostgres, type RedisServer, type TestDatabase } from './support/services.js';
import { cli, cliFails, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';
import { until } from './support/until.js';

const SECRET = 'e2e-cluster-admin-secret-0123456789';
const PREFIX = 'cr-admin:';
const EMAIL = 'owner@example.com';
const PASSWORD = 'correct horse battery';
const VICTIM = 'victim@example.com';
/** The heartbeat of a node is a third of this: presence lost by Redis is written back that fast. */
const NODE_TTL_MS = 1500;
/** The longest back-off between two reconnects of a node's Redis client (src/cluster/redis-connection.ts). */
const REDIS_RECONNECT_CAP_MS = 2000;

/** Asks the Redis server itself: its run id (new at every start) and which devices its presence names. */
async function askRedis(url: string, deviceIds: string[]): Promise<{ runId: string; present: boolean[] }> {
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    const runId = /run_id:(\w+)/.exec(await r.info('server'))![1]!;
    const present = await Promise.all(deviceIds.map(async (id) => (await r.exists(`${PREFIX}device:${id}`)) === 1));
    return { runId, present };
  } finally {
    r.disconnect();
  }
}


describe('a cluster of two fronts and two edges, administered through the store and Redis', () => {
  let redis: RedisServer;
  let db: TestDatabase;
  const dirs: Array<ReturnType<typeof tempDir>> = [];
  let edgeA: HubProc;
  let edgeB: HubProc;
  let front1: HubProc;
  let front2: HubProc;
  let device: Proc & { url: string };
  const agents = {} as Record<'d1' | 'd2' | 'd3', Proc>;
  const devices = {} as Record<'d1' | 'd2' | 'd3', { id: string; secret: string }>;
  let token: string;
  const tunnel = (h: HubProc) => `tcp://127.0.0.1:${h.tunnelPort}`;

  const node = (role: 'front' | 'edge', id: string) => {
    const dir = tempDir();
    dirs.push(dir);
    return startHub(dir.path, [
      '--role', role, '--node-id', id, '--store', db.url, '--redis', redis.url, '--redis-key-prefix', PREFIX,
      '--cluster-secret', SECRET, '--internal-port', '0', '--node-ttl-ms', String(NODE_TTL_MS), '--no-mqtt', '--login-max-failures', '10',
    ]);
  };
  const get = async (front: HubProc, id: string, query = '') => {
    try {
      const r = await fetch(`${front.url}/v1/devices/${id}/api/temperature${query}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) });
      return { status: r.status, body: await r.text() };
    } catch (err) {
      return { status: 0, body: String(err) };
    }
  };

  before(async () => {
    [redis, db] = await Promise.all([privateRedis(), testPostgres()]);
    await cli(['users', 'add', '--store', db.url, '--email', EMAIL, '--password', PASSWORD]);
    await cli(['users', 'add', '--store', db.url, '--email', VICTIM, '--password', PASSWORD]);
    for (const k of ['d1', 'd2', 'd3'] as const) {
      devices[k] = JSON.parse(await cli(['devices', 'add', '--store', db.url, '--name', k, '--email', EMAIL, '--json'])) as { id: string; secret: string };
    }
    // One node first: it creates the shared token signing key in the database that the others then read.
    edgeA = await node('edge', 'edge-a');
    [edgeB, front1, front2, device] = await Promise.all([node('edge', 'edge-b'), node('front', 'front-1'), node('front', 'front-2'), startDevice(EMAIL)]);
    const agent = (id: keyof typeof devices, hubs: HubProc[]) => startAgent({ hub: hubs.map(tunnel), deviceId: devices[id].id, secret: devices[id].secret, api: device.url });
    [agents.d1, agents.d2, agents.d3] = await Promise.all([agent('d1', [edgeA, edgeB]), agent('d2', [edgeB, edgeA]), agent('d3', [edgeB])]);
    token = await login(front1.url, EMAIL, PASSWORD);
  });
  after(async () => {
    await Promise.all([...Object.values(agents).map((a) => a.stop()), device?.stop()]);
    await Promise.all([edgeA, edgeB, front1, front2].map((h) => h?.stop()));
    for (const d of dirs) d.remove();
    await Promise.all([redis?.stop(), db?.drop()]);
  });

  it('says at start which node it is and where it is reached; a front names no tunnel', async () => {
    const banner = (h: HubProc) => until(() => (h.lines.some((l) => l.startsWith('  Data ')) ? h.lines.filter((l) => !l.startsWith('{')) : undefined), 5000, 'the banner');
    const edge = (await banner(edgeA)).join('\n');
    const internalUrl = String(edgeA.logs('hub listening')[0]!.internalUrl);
    assert.match(edge, /cloudrest edge node edge-a is running/);
    assert.ok(edge.includes(`Internal         ${internalUrl}`), edge);
    assert.ok(edge.includes(`Agent tunnel     tcp://127.0.0.1:${edgeA.tunnelPort}`), edge);
    const front = (await banner(front1)).join('\n');
    assert.match(front, /cloudrest front node front-1 is running/);
    assert.ok(front.includes(`HTTP API         http://127.0.0.1:${front1.httpPort}`), front);
    assert.doesNotMatch(front, /tunnel|tcp:\/\//i, 'no tunnel URL on a front');
    const demo = await cliFails(['hub', '--demo', '--role', 'front', '--data', dirs[0]!.path]);
    assert.equal(demo.code, 2);
    assert.match(demo.stderr, /--demo .* needs --role all/);
  });

  it('counts wrong passwords to one account against one limit across both fronts', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const r = await fetch(`${(i % 2 ? front2 : front1).url}/v1/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: VICTIM, password: `wrong guess ${i}` }) });
      const body = await r.text();
      if (r.status === 429) assert.match(body, /CR_ERR_RATE_LIMITED/);
      statuses.push(r.status);
    }
    assert.equal(statuses.filter((s) => s === 401).length, 10, `only --login-max-failures guesses are checked in all: ${statuses.join(' ')}`);
    assert.equal(statuses.filter((s) => s === 429).length, 20);
  });

  it("revokes from a CLI with only --store and --redis: the edge holding the tunnel closes it, both fronts refuse the device", async () => {
    for (const front of [front1, front2]) assert.equal((await get(front, devices.d3.id)).status, 200);
    const out = await cli(['devices', 'revoke', devices.d3.id, '--store', db.url, '--redis', redis.url, '--redis-key-prefix', PREFIX]);
    assert.match(out, new RegExp(`device ${devices.d3.id} revoked \\(.*\\); 4 nodes told, and the one holding its tunnel closes it`));
    await edgeB.waitForLog('device tunnel closed by the hub', (o) => o.deviceId === devices.d3.id, 5000);
    const goaway = await agents.d3.waitForLog('hub says this device is revoked; retrying at the longest backoff', () => true, 10_000);
    assert.equal(goaway.code, 'REVOKED');
    // As on one hub: the device is offline to its owner, through either front.
    for (const front of [front1, front2]) {
      const r = await until(async () => {
        const x = await get(front, devices.d3.id);
        return x.status === 503 ? x : undefined;
      }, 5000, `d3 offline through ${front.url}`);
      assert.match(r.body, /CR_ERR_DEVICE_OFFLINE/);
    }
    await until(() => (edgeB.logs('tunnel refused: device revoked').some((l) => l.deviceId === devices.d3.id) ? true : undefined), 10_000, 'a refused reconnect');
    assert.equal(edgeA.logs('device tunnel closed by the hub').length, 0, 'the other edge held nothing to close');
    assert.equal((await get(front2, devices.d1.id)).status, 200, 'other devices are served');
  });

  it('keeps every device reachable through Redis restarted empty under load, with no agent reconnecting', async () => {
    const live = [devices.d1.id, devices.d2.id];
    for (const front of [front1, front2]) for (const id of live) assert.equal((await get(front, id)).status, 200);
    const failures: Array<{ at: number; status: number; body: string }> = [];
    let stop = false;
    let sent = 0;
    // A client relaying without pause through front 1, each request a new URL (no cached answer).
    const load = (async () => {
      while (!stop) {
        const r = await get(front1, live[sent % 2]!, `?n=${sent++}`);
        if (r.status !== 200) failures.push({ at: Date.now(), ...r });
      }
    })();
    await until(() => (sent > 20 ? true : undefined), 5000, 'load running');
    const first = await askRedis(redis.url, live);
    assert.deepEqual(first.present, [true, true]);
    await redis.restart(); // empty: nothing was kept on disk
    const back = Date.now();
    // Every device through both fronts, each answered once more after the other.
    await until(async () => {
      for (const front of [front1, front2]) for (const id of live) if ((await get(front, id, `?probe=${Date.now()}`)).status !== 200) return undefined;
      return true;
    }, 10_000, 'every device reachable through both fronts');
    const reachableMs = Date.now() - back;
    // The fronts may answer from their own device -> node cache before the edges are back on Redis: the
    // write-back follows the edges' reconnect (back-off capped at 2 s) and their next heartbeat.
    const second = await until(async () => {
      const now = await askRedis(redis.url, live);
      return now.present.every(Boolean) ? now : undefined;
    }, REDIS_RECONNECT_CAP_MS + NODE_TTL_MS / 3 + 3000, 'the edges wrote their devices back');
    const writtenBackMs = Date.now() - back;
    assert.notEqual(second.runId, first.runId, 'a new Redis server');
    const sentAfter = sent;
    await until(() => (sent > sentAfter + 20 ? true : undefined), 5000, 'more load');
    stop = true;
    await load;
    for (const f of failures) assert.match(f.body, /CR_ERR_BACKEND_UNAVAILABLE/, `a failure is a backend being away: ${f.status} ${f.body}`);
    const lastFailure = failures.filter((f) => f.at >= back).at(-1)?.at;
    const gap = lastFailure === undefined ? 0 : lastFailure - back;
    process.stdout.write(`# Redis restarted under load: ${failures.length} of ${sent} requests failed; last failure ${gap} ms after Redis was back; every device answered through both fronts ${reachableMs} ms after, presence written back ${writtenBackMs} ms after\n`);
    assert.ok(gap < NODE_TTL_MS / 3 + 3000, `failures end within a heartbeat period and a margin (${gap} ms)`);
    for (const k of ['d1', 'd2'] as const) assert.equal(agents[k].logs('connected').length, 1, `agent ${k} never reconnected`);
  });
});
