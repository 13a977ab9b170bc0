import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { addDevice, tempDir } from './support/procs.js';
import { MqttClients, nextMessage, pahoRoundTrip, runClient, selfSignedCert, subackCodes } from './support/mqtt-peers.js';
import { SseClient } from './support/sse-client.js';
import { startWorld, type World } from './support/world.js';

const ACL = `# test ACL
allow all       users    users/%u/#
allow publish   devices  telemetry/%d/%c
deny  publish   everyone devices/+/status
allow subscribe everyone public/#
`;

describe('MQTT in the hub: credentials, ACLs, transports, REST bridge', () => {
  let w: World;
  let certs: { path: string; remove(): void };
  let cert: string;
  let notifyPort: number;
  let mqttUrl: string;
  const clients = new MqttClients();

  before(async () => {
    certs = tempDir('cloudrest-mqtt-certs-');
    const tls = selfSignedCert(certs.path);
    cert = tls.cert;
    const acl = join(certs.path, 'acl.txt');
    writeFileSync(acl, ACL);
    w = await startWorld({ hubArgs: ['--tls-cert', tls.cert, '--tls-key', tls.key, '--acl', acl], agentArgs: ['--notify-port', '0'] });
    notifyPort = (await w.agent.waitForLog('notify listening', (o) => typeof o.port === 'number')).port as number;
    assert.ok(w.hub.mqttPort !== undefined && w.hub.mqttsPort !== undefined, 'the hub logs its MQTT ports');
    mqttUrl = `mqtt://127.0.0.1:${w.hub.mqttPort}`;
  });
  after(async () => {
    await clients.closeAll();
    await w?.stop();
    certs?.remove();
  });

  const device = () => ({ username: w.deviceId, password: w.secret });
  const user = () => ({ username: w.email, password: w.token });

  it('a device connects with its id and secret (mosquitto over TCP) and uses its own topics', async () => {
    const port = String(w.hub.mqttPort);
    const topic = `devices/${w.deviceId}/readings`;
    const sub = runClient('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-u', w.deviceId, '-P', w.secret, '-t', topic, '-C', '1', '-W', '8', '-q', '1']);
    // mosquitto_sub has subscribed once the hub counts its subscription; retry the publish until then.
    let out: Awaited<typeof sub> | undefined;
    void sub.then((r) => (out = r));
    for (let i = 0; i < 50 && out === undefined; i++) {
      await runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-u', w.deviceId, '-P', w.secret, '-t', topic, '-m', '21.5', '-q', '1']);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await sub).code, 0, (await sub).stderr);
    assert.equal((await sub).stdout.trim(), '21.5');
  });

  it('refuses a wrong secret (0x86 in 5.0, 4 in 3.1.1) and anonymous clients by default (0x87, 5)', async () => {
    const wrong = await clients.refusal(mqttUrl, { protocolVersion: 5, username: w.deviceId, password: 'not the secret' });
    assert.equal(wrong.code, 0x86, wrong.message);
    const anon = await clients.refusal(mqttUrl, { protocolVersion: 5 });
    assert.equal(anon.code, 0x87, anon.message);
    const port = String(w.hub.mqttPort);
    assert.equal((await runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-u', w.deviceId, '-P', 'nope', '-t', 'x', '-m', 'y'])).code, 4);
    assert.equal((await runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-t', 'x', '-m', 'y'])).code, 5);
    // The hub may write the refusal a moment after the clients have exited. Only the first from this
    // address is written; the next within --log-refusals-interval-ms are counted in a summary line
    // (test/refusal-logs.e2e.test.ts).
    const refusals = () => w.hub.logs('mqtt connection refused: authentication failed').length;
    for (const deadline = Date.now() + 10_000; refusals() < 1 && Date.now() < deadline;) await sleep(50);
    assert.ok(refusals() >= 1, `${refusals()} refusals logged`);
  });

  it('a user connects with an access token over TLS (mosquitto --cafile, mqtt.js) and WebSocket /mqtt', async () => {
    const topic = `devices/${w.deviceId}/cmd`;
    const viaWs = await clients.connect(`ws://127.0.0.1:${w.hub.httpPort}/mqtt`, { protocolVersion: 5, ...user() });
    await viaWs.subscribeAsync(topic, { qos: 1 });
    const viaTls = await clients.connect(`mqtts://127.0.0.1:${w.hub.mqttsPort}`, { ca: readFileSync(cert), ...user() });
    const got = nextMessage(viaWs, (t) => t === topic);
    await viaTls.publishAsync(topic, 'from mqtts', { qos: 1 });
    assert.equal((await got).payload, 'from mqtts');

    const got2 = nextMessage(viaWs, (t) => t === topic);
    const pub = await runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(w.hub.mqttsPort), '--cafile', cert, '-u', w.email, '-P', w.token, '-t', topic, '-m', 'from mosquitto tls', '-q', '1']);
    assert.equal(pub.code, 0, pub.stderr);
    assert.equal((await got2).payload, 'from mosquitto tls');
  });

  it('Paho (Python) connects with a user token and round-trips a QoS 1 message', async () => {
    const r = await pahoRoundTrip(w.hub.mqttPort!, w.email, w.token, `users/${w.email}/paho`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['connack 0', 'suback 1', `message users/${w.email}/paho hello from paho`]);
  });

  it('default ACL: a device cannot subscribe to another device; a user only to the devices they own', async () => {
    const other = await addDevice(w.data.path, 'Not yours', 'someone-else@example.com');
    const dev = await clients.connect(mqttUrl, { protocolVersion: 5, ...device() });
    // devices/+/events and # are granted: each message then goes only where its topic may be read (test/mqtt-acl-overlap.e2e).
    assert.deepEqual(await subackCodes(dev, [`devices/${other.id}/#`, `devices/${w.deviceId}/#`, 'devices/+/events']), [0x87, 1, 1]);
    const owner = await clients.connect(mqttUrl, { protocolVersion: 4, ...user() });
    assert.deepEqual(await subackCodes(owner, [`devices/${w.deviceId}/#`, `devices/${other.id}/#`, '#', 'elsewhere/#']), [1, 128, 1, 128]);
    // The other device has its own topics, not ours.
    const otherDev = await clients.connect(mqttUrl, { protocolVersion: 5, username: other.id, password: other.secret });
    assert.deepEqual(await subackCodes(otherDev, [`devices/${other.id}/#`, `devices/${w.deviceId}/#`], 0), [0, 0x87]);
  });

  it('ACL file: %u, %c and %d rules grant topics; a deny rule refuses a v5 publish with PUBACK 0x87', async () => {
    const dev = await clients.connect(mqttUrl, { protocolVersion: 5, clientId: 'sensor-7', ...device() });
    await dev.publishAsync(`telemetry/${w.deviceId}/sensor-7`, 'ok', { qos: 1 });
    await assert.rejects(dev.publishAsync(`telemetry/${w.deviceId}/sensor-8`, 'not my client id', { qos: 1 }), (e: { code?: number }) => e.code === 0x87);
    await assert.rejects(dev.publishAsync(`devices/${w.deviceId}/status`, '{"online":false}', { qos: 1 }), (e: { code?: number }) => e.code === 0x87);
    const owner = await clients.connect(mqttUrl, { protocolVersion: 5, ...user() });
    assert.deepEqual(await subackCodes(owner, [`users/${w.email}/inbox`, 'users/someone-else@example.com/inbox', 'public/news']), [1, 0x87, 1]);
    // The telemetry rule lets devices publish; nobody was granted to subscribe.
    assert.deepEqual(await subackCodes(owner, [`telemetry/${w.deviceId}/#`]), [0x87]);
  });

  it('a relayed device notification arrives on devices/{id}/events', async () => {
    const owner = await clients.connect(mqttUrl, { protocolVersion: 5, ...user() });
    await owner.subscribeAsync(`devices/${w.deviceId}/events`, { qos: 1 });
    const got = nextMessage(owner, (t) => t.endsWith('/events'));
    const r = await fetch(`http://127.0.0.1:${notifyPort}/notify`, { method: 'POST', body: '{"door":"open"}\n' });
    assert.equal(r.status, 202);
    const m = await got;
    assert.deepEqual([m.topic, m.payload, m.qos], [`devices/${w.deviceId}/events`, '{"door":"open"}', 1]);
  });

  it('POST /v1/topics/{topic} publishes to MQTT subscribers as the token user; errors are JSON codes', async () => {
    const topic = `devices/${w.deviceId}/cmd/light`;
    const sub = await clients.connect(mqttUrl, { protocolVersion: 5, ...device() });
    await sub.subscribeAsync(`devices/${w.deviceId}/cmd/#`, { qos: 1 });
    const got = nextMessage(sub, (t) => t === topic);
    const r = await fetch(`${w.hub.url}/v1/topics/${topic}?qos=1`, { method: 'POST', headers: { ...w.auth, 'content-type': 'application/json' }, body: '{"on":true}' });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { topic, qos: 1, retain: false, bytes: 11 });
    assert.deepEqual(await got, { topic, payload: '{"on":true}', retain: false, qos: 1 });

    const post = async (path: string, headers: Record<string, string> = w.auth, body = 'x') => {
      const res = await fetch(`${w.hub.url}${path}`, { method: 'POST', headers, body });
      return [res.status, ((await res.json()) as { error: { code: string } }).error.code];
    };
    assert.deepEqual(await post('/v1/topics/devices/not-mine/cmd'), [403, 'CR_ERR_TOPIC_FORBIDDEN']);
    assert.deepEqual(await post(`/v1/topics/devices/${w.deviceId}/%23`), [400, 'CR_ERR_TOPIC_INVALID']);
    assert.deepEqual(await post(`/v1/topics/${topic}?qos=2`), [400, 'CR_ERR_VALIDATION']);
    assert.deepEqual(await post(`/v1/topics/${topic}`, {}), [401, 'CR_ERR_UNAUTHORIZED']);
    assert.deepEqual(await post(`/v1/topics/${topic}`, w.auth, 'x'.repeat(1_048_577)), [413, 'CR_ERR_BODY_TOO_LARGE']);
  });

  it('an MQTT publish reaches GET /v1/topics/events as a server-sent event; a filter no allowed topic matches is 403', async () => {
    const filter = encodeURIComponent(`devices/${w.deviceId}/sensors/#`);
    const sse = await SseClient.open(`${w.hub.url}/v1/topics/events?filter=${filter}`, w.auth);
    assert.equal(sse.status, 200);
    const dev = await clients.connect(mqttUrl, { protocolVersion: 5, ...device() });
    // The hub subscribes the stream before it sends the headers, so nothing published from now on is missed.
    const topic = `devices/${w.deviceId}/sensors/t1`;
    await dev.publishAsync(topic, '22.5', { qos: 1, retain: true });
    const events = await sse.until((ev) => ev.some((e) => e.event === 'message'));
    assert.deepEqual(JSON.parse(events.find((e) => e.event === 'message')!.data), { topic, qos: 1, retain: true, payload: '22.5' });
    sse.close();
    const denied = await fetch(`${w.hub.url}/v1/topics/events?filter=${encodeURIComponent('devices/someone-elses/#')}`, { headers: w.auth });
    assert.equal(denied.status, 403);
    assert.equal(((await denied.json()) as { error: { code: string } }).error.code, 'CR_ERR_TOPIC_FORBIDDEN');
  });

  it('a topic event stream whose client does not read is closed, and the hub carries on', async () => {
    const filter = `devices/${w.deviceId}/bulk`;
    const sock = connect(w.hub.httpPort, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write(`GET /v1/topics/events?filter=${encodeURIComponent(filter)} HTTP/1.1\r\nhost: x\r\nauthorization: ${w.auth.authorization}\r\n\r\n`);
    const head = await new Promise<string>((r) => sock.once('data', (b: Buffer) => r(b.toString())));
    assert.match(head, /^HTTP\/1\.1 200/);
    sock.pause(); // never read again: the response piles up in the hub until it gives up
    const dev = await clients.connect(mqttUrl, { protocolVersion: 5, ...device() });
    const chunk = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 400 && w.hub.logs('topic event stream closed: the client read too slowly').length === 0; i++) await dev.publishAsync(filter, chunk, { qos: 1 });
    await w.hub.waitForLog('topic event stream closed: the client read too slowly');
    sock.destroy();
    const r = await fetch(`${w.hub.url}/healthz`);
    assert.equal(r.status, 200);
  });

  it('/metrics shows the broker: connections, subscriptions, retained, messages and bytes per QoS', async () => {
    const text = await (await fetch(`${w.hub.url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name.replace(/[{}]/g, '\\$&')} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    assert.ok(value('cloudrest_mqtt_connections') >= 1, 'clients of this suite are connected');
    assert.ok(value('cloudrest_mqtt_connections_total') >= 8);
    assert.ok(value('cloudrest_mqtt_subscriptions') >= 1);
    assert.ok(value('cloudrest_mqtt_retained_messages') >= 2, 'device status and the sensor reading');
    assert.ok(value('cloudrest_mqtt_messages_received_total{qos="1"}') >= 5);
    assert.ok(value('cloudrest_mqtt_payload_bytes_sent_total{qos="1"}') > 0);
    assert.equal(value('cloudrest_mqtt_messages_dropped_total'), 0);
  });

  it('devices/{id}/status is retained: online while the agent is connected, offline once it stops', async () => {
    const topic = `devices/${w.deviceId}/status`;
    const owner = await clients.connect(mqttUrl, { protocolVersion: 5, ...user() });
    const first = nextMessage(owner, (t) => t === topic);
    await owner.subscribeAsync(topic, { qos: 1 });
    const online = await first;
    assert.equal(online.retain, true);
    assert.equal((JSON.parse(online.payload) as { online: boolean }).online, true);
    const next = nextMessage(owner, (t) => t === topic);
    await w.agent.stop();
    const offline = JSON.parse((await next).payload) as { online: boolean; at: string };
    assert.equal(offline.online, false);
    assert.ok(!Number.isNaN(Date.parse(offline.at)));
    // A late subscriber learns the current state from the retained message.
    const late = await clients.connect(mqttUrl, { protocolVersion: 4, ...user() });
    const retained = nextMessage(late, (t) => t === topic);
    await late.subscribeAsync(topic, { qos: 1 });
    const r = await retained;
    assert.equal(r.retain, true);
    assert.equal((JSON.parse(r.payload) as { online: boolean }).online, false);
  });
});
