/**
 * One MQTT broker over two hub processes (issue 14 §1): PostgreSQL as the store, Redis for the routes
 * and forwards, real clients (mqtt.js, mosquitto_pub/_sub). A message published on one node reaches the
 * subscribers of the other, once per subscription, in order, at the right QoS; only nodes with a matching
 * route receive it; shared groups balance over both; retained messages and the REST bridge are seen once
 * on every node; a node cut off from Redis refuses what it cannot route and recovers.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { SseClient } from './support/sse-client.js';
import { RawClient } from './mqtt-harness.js';
import { cli, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';
import { MqttClients, nextMessage, runClient } from './support/mqtt-peers.js';
import { metric } from './support/mqtt-cluster-world.js';
import { privateRedis, testPostgres, testRedis, type RedisServer, type TestDatabase, type TestRedis } from './support/services.js';

const SECRET = 'cluster-secret-for-tests';

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Collects every message a client receives. */
function collect(c: MqttClient): Array<{ topic: string; payload: string; qos: number; retain: boolean }> {
  const got: Array<{ topic: string; payload: string; qos: number; retain: boolean }> = [];
  c.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain }));
  return got;
}

describe('MQTT across two hub nodes (PostgreSQL store, Redis routes)', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  const dirs: Array<{ path: string; remove(): void }> = [];
  let a: HubProc;
  let b: HubProc;
  let device: Proc | undefined;
  let agent: Proc | undefined;
  let deviceId: string;
  let notifyPort: number;
  let auth: { authorization: string };
  const clients = new MqttClients();
  const urlOf = (h: HubProc) => `mqtt://127.0.0.1:${h.mqttPort}`;

  const node = async (id: string, redisUrl: string, prefix: string, acl: string): Promise<HubProc> => {
    const data = tempDir(`cloudrest-mqtt-${id}-`);
    dirs.push(data);
    return startHub(data.path, ['--store', db.url, '--redis', redisUrl, '--redis-key-prefix', prefix, '--node-id', id, '--cluster-secret', SECRET, '--internal-port', '0',
      '--mqtt-allow-anonymous', '--acl', acl, '--node-ttl-ms', '3000', '--mqtt-sys-interval-s', '1', '--no-admin-socket']);
  };

  before(async () => {
    db = await testPostgres();
    redis = await testRedis();
    const conf = tempDir('cloudrest-mqtt-cluster-');
    dirs.push(conf);
    const acl = join(conf.path, 'acl.txt');
    writeFileSync(acl, 'allow all anonymous #\nallow subscribe anonymous $SYS/#\n');
    const email = 'cluster-owner@example.com';
    await cli(['users', 'add', '--store', db.url, '--email', email, '--password', 'correct horse battery']);
    const added = JSON.parse(await cli(['devices', 'add', '--store', db.url, '--name', 'Boiler', '--email', email, '--json'])) as { id: string; secret: string };
    deviceId = added.id;
    // A first, so it creates the shared signing key; then B.
    a = await node('node-a', redis.url, redis.keyPrefix, acl);
    b = await node('node-b', redis.url, redis.keyPrefix, acl);
    const dev = await startDevice(email);
    device = dev;
    agent = await startAgent({ hub: `tcp://127.0.0.1:${a.tunnelPort}`, deviceId: added.id, secret: added.secret, api: dev.url, extra: ['--notify-port', '0'] });
    notifyPort = (await agent.waitForLog('notify listening', (o) => typeof o.port === 'number')).port as number;
    auth = { authorization: `Bearer ${await login(b.url, email, 'correct horse battery')}` };
  });
  after(async () => {
    await clients.closeAll();
    await Promise.all([agent?.stop(), device?.stop()]);
    await Promise.all([a?.stop(), b?.stop()]);
    for (const d of dirs) d.remove();
    await redis?.drop();
    await db?.drop();
  });

  /** Waits until `on` knows `routes` more routes of the other node than `before`. */
  const routesKnown = (on: HubProc, atLeast: number) => until(`${atLeast} remote routes on a node`, async () => (await metric(on, 'cloudrest_mqtt_routes_remote')) >= atLeast || undefined);

  it('delivers a message published on A to a subscriber on B at QoS 0, 1 and 2', async () => {
    const sub = await clients.connect(urlOf(b), { protocolVersion: 5, clientId: 'x-sub' });
    const got = collect(sub);
    await sub.subscribeAsync('cross/#', { qos: 2 });
    await routesKnown(a, 1);
    const pub = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 'x-pub' });
    for (const qos of [0, 1, 2] as const) await pub.publishAsync(`cross/q${qos}`, `at ${qos}`, { qos, properties: { userProperties: { k: 'v' }, contentType: 'text/plain' } });
    await until('three messages on B', () => got.length >= 3 || undefined);
    assert.deepEqual(got.map((m) => [m.topic, m.payload, m.qos]).sort(), [['cross/q0', 'at 0', 0], ['cross/q1', 'at 1', 1], ['cross/q2', 'at 2', 2]]);
    // The downgrade to the subscription's QoS still applies across nodes.
    const low = await clients.connect(urlOf(b), { protocolVersion: 5, clientId: 'x-low' });
    const lowGot = collect(low);
    await low.subscribeAsync('low/#', { qos: 0 });
    await routesKnown(a, 2);
    await pub.publishAsync('low/x', 'downgraded', { qos: 2 });
    await until('the message at QoS 0', () => lowGot.length >= 1 || undefined);
    assert.equal(lowGot[0]!.qos, 0);
  });

  it('delivers across nodes with the mosquitto clients too, properties kept', async () => {
    const sub = runClient('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.mqttPort), '-V', '5', '-t', 'mosq/x', '-q', '1', '-C', '1', '-F', '%t %p %P', '-W', '10']);
    await routesKnown(a, 3);
    const pub = await runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(a.mqttPort), '-V', '5', '-t', 'mosq/x', '-q', '1', '-m', 'from mosquitto', '-D', 'publish', 'user-property', 'who', 'me']);
    assert.equal(pub.code, 0, pub.stderr);
    const r = await sub;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'mosq/x from mosquitto who:me');
  });

  it('gives each matching subscription one copy, however many filters overlap, in publish order', async () => {
    const sub = await clients.connect(urlOf(b), { protocolVersion: 5, clientId: 'o-sub' });
    const got = collect(sub);
    await sub.subscribeAsync(['ord/#', 'ord/+/t', 'ord/a/t'], { qos: 1 });
    const other = await clients.connect(urlOf(b), { protocolVersion: 5, clientId: 'o-sub2' });
    const got2 = collect(other);
    await other.subscribeAsync('ord/+/t', { qos: 1 });
    const before = await metric(a, 'cloudrest_mqtt_routes_remote');
    assert.ok(before >= 3);
    const pub = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 'o-pub' });
    const n = 200;
    for (let i = 0; i < n; i++) void pub.publish('ord/a/t', String(i), { qos: 1 });
    await until('every message once on each client', () => (got.length >= n && got2.length >= n) || undefined);
    await new Promise((r) => setTimeout(r, 200));
    // One PUBLISH per session (the overlapping filters are one delivery, [MQTT-3.3.4-2]), in order.
    assert.deepEqual(got.map((m) => Number(m.payload)), [...Array(n).keys()]);
    assert.deepEqual(got2.map((m) => Number(m.payload)), [...Array(n).keys()]);
  });

  it('sends nothing to a node with no matching subscription', async () => {
    const inBefore = await metric(b, 'cloudrest_mqtt_forwarded_in_total');
    const pub = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 'n-pub' });
    const local = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 'n-sub' });
    const got = collect(local);
    await local.subscribeAsync('only-a/#', { qos: 1 });
    for (let i = 0; i < 20; i++) await pub.publishAsync('only-a/x', String(i), { qos: 1 });
    await until('the local subscriber got them', () => got.length >= 20 || undefined);
    assert.equal(await metric(b, 'cloudrest_mqtt_forwarded_in_total'), inBefore, 'B received no forward');
    // And one that matches goes to B once per message, however many B subscriptions match.
    await pub.publishAsync('ord/a/t', 'one', { qos: 1 });
    await until('one forward', async () => (await metric(b, 'cloudrest_mqtt_forwarded_in_total')) === inBefore + 1 || undefined);
  });

  it('balances a shared subscription over members on both nodes, each message to one member', async () => {
    const members = await Promise.all([
      clients.connect(urlOf(a), { protocolVersion: 5, clientId: 's-a1' }),
      clients.connect(urlOf(b), { protocolVersion: 5, clientId: 's-b1' }),
      clients.connect(urlOf(b), { protocolVersion: 5, clientId: 's-b2' }),
    ]);
    const got = members.map(collect);
    for (const m of members) await m.subscribeAsync('$share/workers/jobs/#', { qos: 1 });
    const remoteOnA = await metric(a, 'cloudrest_mqtt_routes_remote');
    await until('A knows the group on B', async () => (await metric(a, 'cloudrest_mqtt_routes_remote')) >= remoteOnA || undefined);
    await until('B knows the group on A', async () => (await metric(b, 'cloudrest_mqtt_routes_remote')) >= 2 || undefined);
    const pub = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 's-pub' });
    const n = 60;
    for (let i = 0; i < n; i++) await pub.publishAsync('jobs/x', String(i), { qos: 1 });
    await until('every job delivered', () => got.reduce((s, g) => s + g.length, 0) >= n || undefined);
    await new Promise((r) => setTimeout(r, 300));
    const all = got.flat().map((m) => Number(m.payload)).sort((x, y) => x - y);
    assert.deepEqual(all, [...Array(n).keys()], 'each message to exactly one member');
    assert.ok(got[0]!.length > 0, 'the member on A got some');
    assert.ok(got[1]!.length + got[2]!.length > 0, 'the members on B got some');
  });

  it('hands the messages a shared member on A left unacknowledged to the member on B', async () => {
    const leaver = await RawClient.connect(a.mqttPort!);
    await leaver.handshake(5, { clientId: 'l-a' });
    leaver.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/leave/leave/#', qos: 1, nl: false, rap: false, rh: 0 }] }, 5);
    await leaver.next((p) => p.cmd === 'suback');
    const stayer = await clients.connect(urlOf(b), { protocolVersion: 5, clientId: 'l-b' });
    const got = collect(stayer);
    await stayer.subscribeAsync('$share/leave/leave/#', { qos: 1 });
    await until('A knows the group on B', async () => {
      const pub = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 'l-probe' });
      await pub.publishAsync('leave/probe', 'p', { qos: 1 });
      await pub.endAsync();
      return got.some((m) => m.topic === 'leave/probe') || undefined;
    });
    got.length = 0;
    const pub = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 'l-pub' });
    const n = 10;
    for (let i = 0; i < n; i++) await pub.publishAsync('leave/x', String(i), { qos: 1 });
    // The member on A acknowledges nothing: what it got waits for its PUBACK until it leaves.
    const unacked = await until('the member on A got some', () => {
      const seen = leaver.packets.filter((p) => p.cmd === 'publish' && p.topic === 'leave/x').length;
      return seen > 0 && got.filter((m) => m.topic === 'leave/x').length + seen === n ? seen : undefined;
    });
    leaver.socket.destroy();
    await until('every message on B', () => got.filter((m) => m.topic === 'leave/x').length >= n || undefined);
    await new Promise((r) => setTimeout(r, 300));
    const all = got.filter((m) => m.topic === 'leave/x').map((m) => Number(m.payload)).sort((x, y) => x - y);
    assert.deepEqual(all, [...Array(n).keys()], `each message once on B, the ${unacked} the member on A left unacknowledged included`);
  });

  it('delivers a retained message set on A to a new subscriber on B', async () => {
    const pub = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 'r-pub' });
    await pub.publishAsync('ret/room', '21.5', { qos: 1, retain: true });
    const sub = await clients.connect(urlOf(b), { protocolVersion: 5, clientId: 'r-sub' });
    const first = await until('the retained message on B', async () => {
      const next = nextMessage(sub, (t) => t === 'ret/room', 1000).catch(() => undefined);
      await sub.subscribeAsync('ret/#', { qos: 1 });
      const m = await next;
      await sub.unsubscribeAsync('ret/#');
      return m;
    });
    assert.equal(first.payload, '21.5');
    assert.equal(first.retain, true);
  });

  it('publishes a device event from the REST side once to a subscriber on the other node', async () => {
    const sub = await clients.connect(urlOf(b), { protocolVersion: 5, clientId: 'd-sub' });
    const got = collect(sub);
    await sub.subscribeAsync(`devices/${deviceId}/events`, { qos: 1 });
    const r = await fetch(`http://127.0.0.1:${notifyPort}/notify`, { method: 'POST', body: '{"door":"open"}\n' });
    assert.equal(r.status, 202);
    await until('the device event on B', () => got.length >= 1 || undefined);
    await new Promise((r2) => setTimeout(r2, 500));
    assert.equal(got.length, 1, 'once, not once per node');
  });

  it('delivers a POST /v1/topics on A once to a subscriber on B, and an MQTT publish on A to an SSE stream on B', async () => {
    const sub = await clients.connect(urlOf(b), { protocolVersion: 5, clientId: 'h-sub' });
    const got = collect(sub);
    await sub.subscribeAsync(`devices/${deviceId}/cmd`, { qos: 1 });
    const filter = encodeURIComponent(`devices/${deviceId}/sensors/#`);
    const sse = await SseClient.open(`${b.url}/v1/topics/events?filter=${filter}`, auth);
    assert.equal(sse.status, 200);
    const remote = await metric(a, 'cloudrest_mqtt_routes_remote');
    await until('A knows both routes', async () => (await metric(a, 'cloudrest_mqtt_routes_remote')) >= remote || undefined);
    await routesKnown(a, 9);
    const posted = await fetch(`${a.url}/v1/topics/devices/${deviceId}/cmd?qos=1`, { method: 'POST', headers: auth, body: 'on' });
    assert.equal(posted.status, 200, await posted.text());
    await until('the POSTed message on B', () => got.length >= 1 || undefined);
    const pub = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 'h-pub' });
    await pub.publishAsync(`devices/${deviceId}/sensors/t`, '19', { qos: 1 });
    const events = await sse.until((ev) => ev.some((e) => e.event === 'message'));
    assert.equal(JSON.parse(events.find((e) => e.event === 'message')!.data).payload, '19');
    sse.close();
    assert.equal(got.length, 1);
  });

  it('publishes the cluster total of connected clients in $SYS beside each node\'s own', async () => {
    const sub = await clients.connect(urlOf(b), { protocolVersion: 5, clientId: 'sys-sub' });
    const total = await until('a cluster total covering both nodes', async () => {
      const expected = (await metric(a, 'cloudrest_mqtt_connections')) + (await metric(b, 'cloudrest_mqtt_connections'));
      const next = nextMessage(sub, (t) => t === '$SYS/broker/cluster/clients/connected', 2500).catch(() => undefined);
      await sub.subscribeAsync('$SYS/broker/cluster/clients/connected');
      const m = await next;
      await sub.unsubscribeAsync('$SYS/broker/cluster/clients/connected');
      return m !== undefined && Number(m.payload) === expected ? Number(m.payload) : undefined;
    }, 15_000);
    const own = await metric(b, 'cloudrest_mqtt_connections');
    assert.ok(total > own, 'the total counts the clients of A too');
  });
});

describe('an MQTT node cut off from Redis', () => {
  let db: TestDatabase;
  let redis: RedisServer;
  let hub: HubProc;
  const clients = new MqttClients();
  const data = tempDir('cloudrest-mqtt-cut-');
  before(async () => {
    db = await testPostgres();
    redis = await privateRedis();
    const acl = join(data.path, 'acl.txt');
    writeFileSync(acl, 'allow all anonymous #\n');
    hub = await startHub(join(data.path), ['--store', db.url, '--redis', redis.url, '--node-id', 'cut', '--cluster-secret', SECRET, '--internal-port', '0', '--mqtt-allow-anonymous', '--acl', acl, '--no-admin-socket']);
  });
  after(async () => {
    await clients.closeAll();
    await hub?.stop();
    await redis?.stop();
    await db?.drop();
    data.remove();
  });

  it('refuses a QoS 1 publish with a reason while Redis is down, and accepts again once it is back', async () => {
    const pub = await clients.connect(`mqtt://127.0.0.1:${hub.mqttPort}`, { protocolVersion: 5, clientId: 'cut-pub' });
    const ack = async () => {
      try {
        const p = await pub.publishAsync('cut/x', 'm', { qos: 1 });
        return (p as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
      } catch (err) {
        return (err as { code?: number }).code ?? -1;
      }
    };
    assert.ok([0, 0x10].includes(await ack()));
    await redis.stop();
    assert.equal(await until('a refusal', async () => ((await ack()) === 0x80 ? 0x80 : undefined)), 0x80);
    await hub.waitForLog('mqtt cluster: publish refused: Redis is unreachable, messages cannot be routed to the other nodes');
    await redis.restart();
    await until('accepted again', async () => ([0, 0x10].includes(await ack()) ? true : undefined), 15_000);
  });
});
