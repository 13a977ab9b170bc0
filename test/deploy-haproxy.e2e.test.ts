/**
 * The balancer users deploy (deploy/compose/haproxy.cfg), run for real with Debian's HAProxy in front
 * of two fronts and two edges on one PostgreSQL database and one Redis key prefix of this run. Only its
 * addresses are rewritten (the compose service names become this machine's ports); every rule, balance,
 * timeout and health check is the shipped one. Agents, MQTT clients and HTTP clients know only the
 * balancer, as in a compose deployment.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { MqttClient } from 'mqtt';
import { MqttClients } from './support/mqtt-peers.js';
import { SseClient } from './support/sse-client.js';
import { freePort, testPostgres, testRedis, type TestDatabase, type TestRedis } from './support/services.js';
import { cli, curlGet, login, Proc, startAgent, startDevice, startHub, tempDir, type HubProc } from './support/procs.js';
import { metric } from './support/mqtt-cluster-world.js';
import { until } from './support/until.js';

const SHIPPED = new URL('../deploy/compose/haproxy.cfg', import.meta.url).pathname;
const SECRET = 'e2e-balancer-secret-0123456789';
const EMAIL = 'owner@example.com';
const PASSWORD = 'correct horse battery';
const TTL_MS = 1500;

/** The compose ports a node listens on, and the port of this machine's node they stand for. */
const nodePort = (node: HubProc, port: string): number => {
  const ports: Record<string, number | undefined> = { '8080': node.httpPort, '7443': node.tunnelPort, '1883': node.mqttPort };
  const p = ports[port];
  if (p === undefined) throw new Error(`the shipped config names port ${port}, which this test does not know`);
  return p;
};

/**
 * The shipped config with its `bind :PORT` lines on 127.0.0.1 ports of this run and its `server NAME
 * NAME:PORT ... port 8080` lines on the nodes' ports. Anything else is kept as shipped.
 */
function localConfig(shipped: string, binds: Record<string, number>, nodes: Record<string, HubProc>): string {
  let servers = 0;
  const lines = shipped.split('\n').map((line) => {
    const bind = /^(\s*bind) :(\d+)(.*)$/.exec(line);
    if (bind) {
      const port = binds[bind[2]!];
      if (port === undefined) throw new Error(`the shipped config binds :${bind[2]}, which this test does not know`);
      return `${bind[1]} 127.0.0.1:${port}${bind[3]}`;
    }
    const server = /^(\s*server (\S+)) (\S+):(\d+)(.*)$/.exec(line);
    if (!server) return line;
    const node = nodes[server[3]!];
    if (node === undefined) throw new Error(`the shipped config names server ${server[3]}, which this test does not run`);
    servers++;
    return `${server[1]} 127.0.0.1:${nodePort(node, server[4]!)}${server[5]!.replace(/\bport (\d+)/, (_m, p: string) => `port ${nodePort(node, p)}`)}`;
  });
  assert.ok(servers >= 6, `the shipped config balances fronts and edges (${servers} server lines)`);
  return lines.join('\n');
}

/** HAProxy's per-server statistics (`show stat` on its stats socket), by "backend/server". */
async function haproxyStats(socketPath: string): Promise<Map<string, Record<string, string>>> {
  const s = connect(socketPath);
  s.end('show stat\n');
  let csv = '';
  for await (const chunk of s) csv += String(chunk);
  const [header, ...rows] = csv.replace(/^# /, '').trim().split('\n');
  const names = header!.split(',');
  const out = new Map<string, Record<string, string>>();
  for (const row of rows) {
    const f = row.split(',');
    const r = Object.fromEntries(names.map((n, i) => [n, f[i] ?? '']));
    out.set(`${r.pxname}/${r.svname}`, r);
  }
  return out;
}

describe('the shipped HAProxy config in front of two fronts and two edges', () => {
  let redis: TestRedis;
  let db: TestDatabase;
  const dirs: Array<ReturnType<typeof tempDir>> = [];
  const procs: Proc[] = [];
  const mqtt = new MqttClients();
  let nodes: Record<'front1' | 'front2' | 'edge1' | 'edge2', HubProc>;
  let lb: { http: number; tunnel: number; mqtt: number };
  let statsSocket: string;
  const devices = {} as Record<'d1' | 'd2' | 'd3', { id: string; secret: string }>;
  let token: string;

  const node = (role: 'front' | 'edge', id: string) => {
    const dir = tempDir();
    dirs.push(dir);
    // The compose command of this node (role, node id) and its shared settings (store, Redis, secret).
    return startHub(dir.path, [
      '--role', role, '--node-id', id, '--store', db.url, '--redis', redis.url, '--redis-key-prefix', redis.keyPrefix,
      '--cluster-secret', SECRET, '--internal-port', '0', '--node-ttl-ms', String(TTL_MS),
    ]);
  };
  const get = (id: string, query = '') => curlGet(`http://127.0.0.1:${lb.http}/v1/devices/${id}/api/temperature${query}`, token);
  /** The edge holding a device, as presence in Redis names it. */
  const holder = async (deviceId: string): Promise<'edge1' | 'edge2'> => {
    const r = new Redis(redis.url);
    try {
      const entry = await r.get(`${redis.keyPrefix}device:${deviceId}`);
      const nodeId = entry?.split(' ')[0];
      assert.ok(nodeId === 'edge1' || nodeId === 'edge2', `presence names an edge for the device: ${entry}`);
      return nodeId;
    } finally {
      r.disconnect();
    }
  };

  before(async () => {
    [redis, db] = await Promise.all([testRedis(), testPostgres()]);
    await cli(['users', 'add', '--store', db.url, '--email', EMAIL, '--password', PASSWORD]);
    for (const k of ['d1', 'd2', 'd3'] as const) devices[k] = JSON.parse(await cli(['devices', 'add', '--store', db.url, '--name', k, '--email', EMAIL, '--json'])) as { id: string; secret: string };
    const [front1, front2, edge1, edge2, device] = await Promise.all([node('front', 'front1'), node('front', 'front2'), node('edge', 'edge1'), node('edge', 'edge2'), startDevice(EMAIL)]);
    nodes = { front1, front2, edge1, edge2 };
    procs.push(device);
    lb = { http: await freePort(), tunnel: await freePort(), mqtt: await freePort() };
    const cfg = join(dirs[0]!.path, 'haproxy.cfg');
    // Added to what is shipped: a stats socket, for the test to read HAProxy's own counters.
    statsSocket = join(dirs[0]!.path, 'haproxy.sock');
    writeFileSync(cfg, localConfig(readFileSync(SHIPPED, 'utf8'), { '8080': lb.http, '7443': lb.tunnel, '1883': lb.mqtt }, nodes).replace(/^global$/m, `global\n  stats socket ${statsSocket}`));
    const check = spawn('haproxy', ['-c', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    const checked = new Proc(check, 'haproxy -c');
    assert.equal(await checked.exited, 0, `the config is valid: ${checked.lines.join('\n')}`);
    const haproxy = new Proc(spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] }), 'haproxy');
    procs.push(haproxy);
    await until(async () => ((await fetch(`http://127.0.0.1:${lb.http}/readyz`).catch(() => undefined))?.ok ? true : undefined), 15_000, 'the balancer answering for a front')
      .catch((err: unknown) => { throw new Error(`${String(err)}; haproxy said:\n${haproxy.lines.join('\n')}`); });
    // Agents knowing only the balancer: d1 and d3 on the raw tunnel port, one after the other, so
    // `leastconn` puts them on different edges; d2 over WebSocket.
    const agent = (k: keyof typeof devices, hub: string, extra: string[] = []) => startAgent({ hub, deviceId: devices[k].id, secret: devices[k].secret, api: device.url, extra });
    procs.push(await agent('d1', `tcp://127.0.0.1:${lb.tunnel}`), await agent('d3', `tcp://127.0.0.1:${lb.tunnel}`), await agent('d2', `ws://127.0.0.1:${lb.http}`, ['--notify-port', '0']));
    token = await login(`http://127.0.0.1:${lb.http}`, EMAIL, PASSWORD);
  });
  after(async () => {
    await mqtt.closeAll();
    await Promise.all(procs.map((p) => p.stop()));
    await Promise.all(Object.values(nodes ?? {}).map((h) => h.stop()));
    for (const d of dirs) d.remove();
    await Promise.all([redis?.drop(), db?.drop()]);
  });

  it('relays to agents on the raw tunnel port and on the WebSocket path, logged in through it, each request on either front', async () => {
    for (let i = 0; i < 6; i++) {
      for (const k of ['d1', 'd2', 'd3'] as const) {
        const r = await get(devices[k].id, `?n=${i}`);
        assert.equal(r.status, 200, `${k} through the balancer: ${r.body}`);
      }
    }
    // Round robin over the fronts: each relayed some of those requests; the tunnels end on the edges.
    for (const front of [nodes.front1, nodes.front2]) assert.ok((await metric(front, 'cloudrest_relay_requests_total')) > 0, 'each front relayed');
    assert.equal((await metric(nodes.edge1, 'cloudrest_devices_online')) + (await metric(nodes.edge2, 'cloudrest_devices_online')), 3, 'the tunnels end on the edges');
  });

  it("streams a device's notifications over SSE through it, from the edge holding the device to a front", async () => {
    const notifier = procs.find((p) => p.logs('notify listening').length > 0)!;
    const notifyPort = notifier.logs('notify listening')[0]!.port as number;
    const stream = await SseClient.open(`http://127.0.0.1:${lb.http}/v1/devices/${devices.d2.id}/events`, { authorization: `Bearer ${token}` });
    try {
      await stream.until((ev) => ev.some((e) => e.event === 'status'));
      const r = await fetch(`http://127.0.0.1:${notifyPort}/notify`, { method: 'POST', body: 'through the balancer\n' });
      assert.equal(r.status, 202);
      await stream.until(() => stream.of('notification').length > 0);
      assert.equal((JSON.parse(stream.of('notification')[0]!.data) as { message: string }).message, 'through the balancer');
    } finally {
      stream.close();
    }
  });

  it('carries MQTT to the edges, on its TCP port and over WebSocket, one broker across them', { timeout: 30_000 }, async () => {
    const d1 = devices.d1;
    const got: string[] = [];
    const user: MqttClient = await mqtt.connect(`ws://127.0.0.1:${lb.http}/mqtt`, { protocolVersion: 5, clientId: 'lb-user', username: EMAIL, password: token });
    user.on('message', (_t, p) => got.push(p.toString()));
    await user.subscribeAsync(`devices/${d1.id}/sensors`, { qos: 1 });
    const dev = await mqtt.connect(`mqtt://127.0.0.1:${lb.mqtt}`, { protocolVersion: 5, clientId: 'lb-device', username: d1.id, password: d1.secret });
    await until(async () => {
      await dev.publishAsync(`devices/${d1.id}/sensors`, `t=${got.length}`, { qos: 1 });
      return got.length > 0 ? true : undefined;
    }, 10_000, 'the device\'s message reaching the user');
    assert.match(got[0]!, /^t=\d+$/);
    const onEdges = (await metric(nodes.edge1, 'cloudrest_mqtt_connections')) + (await metric(nodes.edge2, 'cloudrest_mqtt_connections'));
    assert.equal(onEdges, 2, 'both MQTT clients are on the edges');
  });

  it('sends the agents of a killed edge to the other edge at once, though that edge has more connections, and every device answers again', async () => {
    const [e1, e3] = [await holder(devices.d1.id), await holder(devices.d3.id)];
    assert.notEqual(e1, e3, 'leastconn put the two raw-tunnel agents on different edges');
    const killed = nodes[e1];
    killed.child.kill('SIGKILL');
    await killed.exited;
    const killedAt = Date.now();
    await until(async () => {
      for (const k of ['d1', 'd2', 'd3'] as const) if ((await get(devices[k].id, `?after=${Date.now()}`)).status !== 200) return undefined;
      return true;
    }, 30_000, 'every device answering again through the balancer');
    const backMs = Date.now() - killedAt;
    const dead = (await haproxyStats(statsSocket)).get(`edges_tcp/${e1}`)!;
    process.stdout.write(`# balancer: every device answered again ${backMs} ms after kill -9 of the edge holding d1 (HAProxy: ${dead.wredis} redispatched from it, status ${dead.status})\n`);
    // leastconn picks the dead edge (it has the fewest connections): only a redispatch sends d1's agent
    // on before the health checks take that edge out.
    assert.ok(Number(dead.wredis) >= 1, `the connection the dead edge refused went to the other edge (redispatches: ${dead.wredis})`);
  });
});
