import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { IPublishPacket } from 'mqtt-packet';
import { WebSocket } from 'ws';
import { RawClient } from './mqtt-harness.js';
import { MqttClients, nextMessage, runClient, selfSignedCert, subackCodes } from './support/mqtt-peers.js';
import { addDevice, addUser, CLI, login, Proc, startAgent, startDevice, startHub, tempDir, type HubProc } from './support/procs.js';

const EMAIL = 'keeper@example.com';
const PASSWORD = 'keeper password 1';

describe('MQTT hub lifecycle: restart, anonymous access, client certificates', () => {
  let data: { path: string; remove(): void };
  let hub: HubProc;
  let deviceId: string;
  let deviceSecret: string;
  let tls: { cert: string; key: string };
  let ca: { ca: string; clientCert: string; clientKey: string };
  const clients = new MqttClients();
  const hubArgs = () => ['--mqtt-allow-anonymous', '--acl', join(data.path, 'acl.txt'), '--tls-cert', tls.cert, '--tls-key', tls.key, '--tls-ca', ca.ca, '--mqtt-sys-interval-s', '1'];

  before(async () => {
    data = tempDir('cloudrest-mqtt-life-');
    tls = selfSignedCert(data.path);
    ca = clientCa(join(data.path, 'ca'));
    writeFileSync(join(data.path, 'acl.txt'), 'allow all anonymous public/#\nallow subscribe anonymous $SYS/#\n');
    await addUser(data.path, EMAIL, PASSWORD);
    ({ id: deviceId, secret: deviceSecret } = await addDevice(data.path, 'Lamp', EMAIL));
    hub = await startHub(data.path, hubArgs());
  });
  after(async () => {
    await clients.closeAll();
    await hub?.stop();
    data?.remove();
  });

  it('with --mqtt-allow-anonymous an anonymous client connects and gets only what the ACL grants', async () => {
    const anon = await clients.connect(`mqtt://127.0.0.1:${hub.mqttPort}`, { protocolVersion: 5 });
    assert.deepEqual(await subackCodes(anon, ['public/#', `devices/${deviceId}/#`]), [1, 0x87]);
    const got = nextMessage(anon, (t) => t === 'public/hello');
    await anon.publishAsync('public/hello', 'hi', { qos: 1 });
    assert.equal((await got).payload, 'hi');
  });

  it('publishes $SYS/broker statistics to clients the ACL lets read them, and to nobody else', async () => {
    const anon = await clients.connect(`mqtt://127.0.0.1:${hub.mqttPort}`, { protocolVersion: 5 });
    const version = nextMessage(anon, (t) => t === '$SYS/broker/version');
    let connected = 0;
    anon.on('message', (topic, payload) => {
      if (topic === '$SYS/broker/clients/connected') connected = Math.max(connected, Number(payload.toString()));
    });
    assert.deepEqual(await subackCodes(anon, ['$SYS/broker/#'], 0), [0]);
    assert.match((await version).payload, /^cloudrest version \d+\.\d+\.\d+/);
    // Every value seen, the retained one included; rounds come each second, and the value retained
    // before this client came may not count it yet.
    for (let i = 0; i < 60 && connected < 1; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(connected >= 1, `clients/connected is ${connected}`);
    const token = await login(hub.url, EMAIL, PASSWORD);
    const user = await clients.connect(`mqtt://127.0.0.1:${hub.mqttPort}`, { protocolVersion: 5, username: EMAIL, password: token });
    assert.deepEqual(await subackCodes(user, ['$SYS/#']), [0x87]);
  });

  it('MQTTS with --tls-ca: no client certificate or one the CA signed is accepted; an untrusted one is not', async () => {
    const port = String(hub.mqttsPort);
    const base = ['-h', '127.0.0.1', '-p', port, '--cafile', tls.cert, '-t', 'public/tls', '-m', 'x', '-q', '1'];
    assert.equal((await runClient('mosquitto_pub', base)).code, 0);
    const signed = await runClient('mosquitto_pub', [...base, '--cert', ca.clientCert, '--key', ca.clientKey]);
    assert.equal(signed.code, 0, signed.stderr);
    const rogue = selfSignedCert(join(data.path, 'ca'));
    const refused = await runClient('mosquitto_pub', [...base, '--cert', rogue.cert, '--key', rogue.key]);
    assert.notEqual(refused.code, 0);
    await hub.waitForLog('mqtts connection refused: client certificate not trusted');
  });

  it('a restarted hub (same --data) keeps a persistent session with its queued QoS 1 message, and retained messages', async () => {
    const token = await login(hub.url, EMAIL, PASSWORD);
    const opts = { protocolVersion: 5 as const, clientId: 'keeper-1', clean: false, properties: { sessionExpiryInterval: 3600 }, username: EMAIL, password: token };
    const first = await clients.connect(`mqtt://127.0.0.1:${hub.mqttPort}`, opts);
    await first.subscribeAsync(`devices/${deviceId}/cmd`, { qos: 1 });
    await first.endAsync();
    const post = async (path: string, body: string) => {
      const r = await fetch(`${hub.url}/v1/topics/${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body });
      assert.equal(r.status, 200, await r.text());
    };
    await post(`devices/${deviceId}/cmd?qos=1`, 'sent while away');
    await post(`devices/${deviceId}/config?qos=1&retain=true`, '{"interval":30}');
    assert.equal(await hub.stop(), 0);

    hub = await startHub(data.path, hubArgs());
    const again = await clients.connectCollecting(`mqtt://127.0.0.1:${hub.mqttPort}`, opts);
    assert.equal(again.sessionPresent, true);
    for (let i = 0; i < 50 && again.messages.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(again.messages, [{ topic: `devices/${deviceId}/cmd`, payload: 'sent while away' }]);
    const fresh = await clients.connect(`mqtt://127.0.0.1:${hub.mqttPort}`, { protocolVersion: 4, username: EMAIL, password: token });
    const retained = nextMessage(fresh, (t) => t.endsWith('/config'));
    await fresh.subscribeAsync(`devices/${deviceId}/config`, { qos: 1 });
    const r = await retained;
    assert.deepEqual([r.payload, r.retain], ['{"interval":30}', true]);
  });

  it('after a restart, messages queued for a shared subscription member still move to another member when it leaves unacknowledged', async () => {
    const url = () => `mqtt://127.0.0.1:${hub.mqttPort}`;
    const member = { clientId: 'share-keeper', clean: false, properties: { sessionExpiryInterval: 300 } };
    // The only member of the group, gone offline: what is published waits in its queue.
    const away = await RawClient.connect(hub.mqttPort!);
    await away.handshake(5, member);
    away.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/keepers/public/jobs', qos: 1 }] }, 5);
    await away.next((p) => p.cmd === 'suback');
    away.socket.destroy();
    await away.closed;
    const pub = await clients.connect(url(), { protocolVersion: 5 });
    for (const job of ['job 1', 'job 2', 'job 3']) await pub.publishAsync('public/jobs', job, { qos: 1 });
    await pub.endAsync();
    assert.equal(await hub.stop(), 0);

    hub = await startHub(data.path, hubArgs());
    const other = await clients.connect(url(), { protocolVersion: 5, clientId: 'share-other' });
    const moved: string[] = [];
    other.on('message', (_t, payload) => moved.push(payload.toString()));
    await other.subscribeAsync('$share/keepers/public/jobs', { qos: 1 });
    // The member comes back, is sent its queue, acknowledges none of it, and goes again.
    const back = await RawClient.connect(hub.mqttPort!);
    assert.equal((await back.handshake(5, member)).sessionPresent, true);
    const sent: string[] = [];
    for (let i = 0; i < 3; i++) sent.push(((await back.next((p) => p.cmd === 'publish')) as IPublishPacket).payload.toString());
    assert.deepEqual(sent, ['job 1', 'job 2', 'job 3']);
    back.socket.destroy();
    for (let i = 0; i < 100 && moved.length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(moved, ['job 1', 'job 2', 'job 3'], 'the unacknowledged messages went to the other member of the group');
  });

  it('after a restart, a stored session is still its owner\'s: another principal\'s clean start is refused (0x85), its owner\'s ends it and hands its shared messages to another member', async () => {
    const url = () => `mqtt://127.0.0.1:${hub.mqttPort}`;
    const away = await RawClient.connect(hub.mqttPort!);
    await away.handshake(5, { clientId: 'share-anon', clean: false, properties: { sessionExpiryInterval: 300 } });
    away.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/anons/public/work', qos: 1 }] }, 5);
    await away.next((p) => p.cmd === 'suback');
    away.socket.destroy();
    await away.closed;
    const pub = await clients.connect(url(), { protocolVersion: 5 });
    for (const job of ['work 1', 'work 2']) await pub.publishAsync('public/work', job, { qos: 1 });
    await pub.endAsync();
    assert.equal(await hub.stop(), 0);

    hub = await startHub(data.path, hubArgs());
    const other = await clients.connect(url(), { protocolVersion: 5, clientId: 'share-anon-other' });
    const moved: string[] = [];
    other.on('message', (_t, payload) => moved.push(payload.toString()));
    await other.subscribeAsync('$share/anons/public/work', { qos: 1 });
    const token = await login(hub.url, EMAIL, PASSWORD);
    const intruder = await clients.refusal(url(), { protocolVersion: 5, clientId: 'share-anon', clean: true, username: EMAIL, password: token });
    assert.equal(intruder.code, 0x85, `another principal cannot discard the session: ${intruder.message}`);
    const owner = await RawClient.connect(hub.mqttPort!);
    assert.equal((await owner.handshake(5, { clientId: 'share-anon', clean: true })).sessionPresent, false, 'Clean Start: a new session');
    for (let i = 0; i < 100 && moved.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(moved, ['work 1', 'work 2'], 'the ended session\'s queue went to the other member of the group');
    owner.socket.destroy();
  });

  it('a hub killed while a device was online says "offline" for it after the restart, not a stale "online"', async () => {
    const token = await login(hub.url, EMAIL, PASSWORD);
    const rest = await startDevice(EMAIL);
    const agent = await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId, secret: deviceSecret, api: rest.url });
    try {
      const topic = `devices/${deviceId}/status`;
      const watcher = await clients.connect(`mqtt://127.0.0.1:${hub.mqttPort}`, { protocolVersion: 5, username: EMAIL, password: token });
      const online = nextMessage(watcher, (t) => t === topic);
      await watcher.subscribeAsync(topic, { qos: 1 });
      assert.equal((JSON.parse((await online).payload) as { online: boolean }).online, true);
      await hub.stop('SIGKILL');
      // The agent cannot reach the new hub (another tunnel port): the device stays offline.
      hub = await startHub(data.path, hubArgs());
      const late = await clients.connect(`mqtt://127.0.0.1:${hub.mqttPort}`, { protocolVersion: 5, username: EMAIL, password: token });
      const retained = nextMessage(late, (t) => t === topic);
      await late.subscribeAsync(topic, { qos: 1 });
      const r = await retained;
      assert.equal(r.retain, true);
      assert.equal((JSON.parse(r.payload) as { online: boolean }).online, false);
    } finally {
      await agent.stop();
      await rest.stop();
    }
  });
});

describe('MQTT ports: a taken default port is a warning, a taken explicit port an error', () => {
  let blocker: Server | undefined;
  let data: { path: string; remove(): void };
  before(async () => {
    data = tempDir('cloudrest-mqtt-ports-');
    // 1883 is Mosquitto's here; where it is free, this test takes it, so the default is taken either way.
    const server = createServer();
    blocker = await new Promise<Server | undefined>((resolve) => {
      server.once('error', () => resolve(undefined));
      server.listen(1883, '127.0.0.1', () => resolve(server));
    });
  });
  after(() => {
    blocker?.close();
    data?.remove();
  });

  it('with the default port taken, the demo hub warns, shows MQTT over WebSocket in its banner, and serves HTTP', async () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CLOUDREST_')));
    const p = new Proc(spawn(process.execPath, [CLI, 'hub', '--demo', '--data', data.path, '--host', '127.0.0.1', '--http-port', '0', '--tunnel-port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] }), 'hub');
    try {
      const warning = await p.waitForLog('MQTT port 1883 is in use by another process; MQTT over TCP is off; set --mqtt-port');
      assert.equal(warning.level, 40);
      const listening = await p.waitForLog('hub listening');
      assert.equal(listening.mqttPort, undefined);
      await p.waitFor((l) => l.includes('MQTT over TCP off: port 1883 is in use by another process (set --mqtt-port)'));
      const mqttLine = await p.waitFor((l) => l.trimStart().startsWith('MQTT '));
      assert.match(mqttLine, new RegExp(`ws://127\\.0\\.0\\.1:${listening.httpPort as number}/mqtt`));
      const r = await fetch(`http://127.0.0.1:${listening.httpPort as number}/healthz`);
      assert.equal(r.status, 200);
    } finally {
      await p.stop();
    }
  });

  it('with --mqtt-port set to a taken port, the hub exits with a message naming the port and the flag', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as AddressInfo).port;
    try {
      const p = new Proc(spawn(process.execPath, [CLI, 'hub', '--data', data.path, '--host', '127.0.0.1', '--http-port', '0', '--tunnel-port', '0', '--mqtt-port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] }), 'hub');
      assert.equal(await p.exited, 2);
      assert.ok(p.lines.some((l) => l.includes(`MQTT port ${port} on 127.0.0.1 is already in use; choose another with --mqtt-port`)), p.lines.join('\n'));
    } finally {
      taken.close();
    }
  });
});

/** A CA and a client certificate it signed, for MQTTS client authentication. */
function clientCa(dir: string): { ca: string; clientCert: string; clientKey: string } {
  mkdirSync(dir, { recursive: true });
  const f = (n: string) => join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  execFileSync('openssl', ['req', '-x509', ...ec, '-days', '2', '-subj', '/CN=test-ca', '-keyout', f('ca.key'), '-out', f('ca.pem')], { stdio: 'ignore' });
  execFileSync('openssl', ['req', ...ec, '-subj', '/CN=client', '-keyout', f('client.key'), '-out', f('client.csr')], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', f('client.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-out', f('client.pem')], { stdio: 'ignore' });
  return { ca: f('ca.pem'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

describe('MQTT over secure WebSocket, and --no-mqtt', () => {
  let data: { path: string; remove(): void };
  const clients = new MqttClients();
  before(() => {
    data = tempDir('cloudrest-mqtt-wss-');
    writeFileSync(join(data.path, 'acl.txt'), 'allow all anonymous public/#\n');
  });
  after(async () => {
    await clients.closeAll();
    data?.remove();
  });

  it('serves wss://…/mqtt when the HTTP port runs HTTPS (--http-tls)', async () => {
    const tls = selfSignedCert(data.path);
    const hub = await startHub(data.path, ['--http-tls', '--tls-cert', tls.cert, '--tls-key', tls.key, '--mqtt-allow-anonymous', '--acl', join(data.path, 'acl.txt')]);
    try {
      const c = await clients.connect(`wss://127.0.0.1:${hub.httpPort}/mqtt`, { protocolVersion: 5, ca: readFileSync(tls.cert) });
      await c.subscribeAsync('public/wss', { qos: 1 });
      const got = nextMessage(c, (t) => t === 'public/wss');
      await c.publishAsync('public/wss', 'over wss', { qos: 1 });
      assert.equal((await got).payload, 'over wss');
      await c.endAsync();
    } finally {
      await hub.stop();
    }
  });

  it('--no-mqtt: no MQTT listener, no /mqtt, no /v1/topics', async () => {
    const hub = await startHub(join(data.path, 'off'), ['--no-mqtt']);
    try {
      const listening = await hub.waitForLog('hub listening');
      assert.equal(listening.mqttPort, undefined);
      assert.equal(listening.mqttWsUrl, undefined);
      const ws = new WebSocket(`ws://127.0.0.1:${hub.httpPort}/mqtt`, 'mqtt');
      ws.on('error', () => undefined); // terminate() below reports the aborted handshake as an error
      const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
      assert.equal(res.statusCode, 404);
      ws.terminate();
      const r = await fetch(`${hub.url}/v1/topics/public/x`, { method: 'POST', body: 'x' });
      assert.equal(r.status, 404);
    } finally {
      await hub.stop();
    }
  });
});
