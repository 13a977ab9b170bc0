// The broker limits a hub operator sets on the command line, in the environment (CLOUDREST_*) or the
// config file, seen by real clients of a real hub process: --mqtt-max-keepalive, --mqtt-receive-maximum,
// --mqtt-max-packet-size, --mqtt-max-inflight, --mqtt-max-queued.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { addDevice, startHub, tempDir, type HubProc } from './support/procs.js';
import { MqttClients, runClient } from './support/mqtt-peers.js';
import { RawClient } from './mqtt-harness.js';

type Connack = { sessionPresent: boolean; returnCode?: number; reasonCode?: number; properties?: { serverKeepAlive?: number; receiveMaximum?: number; maximumPacketSize?: number } };

describe('MQTT limits from hub flags', () => {
  const data = tempDir();
  const clients = new MqttClients();
  const raws: RawClient[] = [];
  let hub: HubProc;
  let url: string;
  let device: { id: string; secret: string };

  before(async () => {
    device = await addDevice(data.path, 'Limited');
    hub = await startHub(data.path, ['--mqtt-max-keepalive', '30', '--mqtt-receive-maximum', '2', '--mqtt-max-packet-size', '2048', '--mqtt-max-inflight', '3', '--mqtt-max-queued', '5']);
    url = `mqtt://127.0.0.1:${hub.mqttPort}`;
  });
  after(async () => {
    await clients.closeAll();
    for (const r of raws) r.socket.destroy();
    await hub?.stop();
    data.remove();
  });

  const creds = () => ({ username: device.id, password: device.secret });
  const raw = async (version: 4 | 5, fields: Record<string, unknown> = {}): Promise<{ r: RawClient; connack: Connack }> => {
    const r = await RawClient.connect(hub.mqttPort!);
    raws.push(r);
    const connack = (await r.handshake(version, { username: device.id, password: Buffer.from(device.secret), ...fields })) as Connack;
    return { r, connack };
  };

  it('--mqtt-max-keepalive: a 5.0 client asking for more, or for 0, is told Server Keep Alive 30; less is left alone', async () => {
    assert.equal((await raw(5, { keepalive: 600 })).connack.properties?.serverKeepAlive, 30);
    assert.equal((await raw(5, { keepalive: 0 })).connack.properties?.serverKeepAlive, 30);
    const within = await raw(5, { keepalive: 20 });
    assert.equal(within.connack.reasonCode, 0);
    assert.equal(within.connack.properties?.serverKeepAlive, undefined);
  });

  it('--mqtt-max-keepalive: a 3.1.1 client asking for more, or for 0, is refused (CONNACK 2, as Mosquitto); mosquitto_pub too', async () => {
    assert.equal((await raw(4, { keepalive: 600 })).connack.returnCode, 2);
    assert.equal((await raw(4, { keepalive: 0 })).connack.returnCode, 2);
    assert.equal((await raw(4, { keepalive: 30 })).connack.returnCode, 0);
    const port = String(hub.mqttPort);
    const pub = (k: string) => runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-V', 'mqttv311', '-k', k, '-u', device.id, '-P', device.secret, '-t', `devices/${device.id}/x`, '-m', 'y']);
    assert.equal((await pub('60')).code, 2, 'mosquitto_pub exits with the CONNACK return code');
    assert.equal((await pub('25')).code, 0);
  });

  it('--mqtt-receive-maximum: told in CONNACK; a 5.0 client sending one QoS 2 PUBLISH more gets DISCONNECT 0x93', async () => {
    const { r, connack } = await raw(5);
    assert.equal(connack.properties?.receiveMaximum, 2);
    for (const id of [1, 2, 3]) r.send({ cmd: 'publish', topic: `devices/${device.id}/x`, payload: Buffer.from('q2'), qos: 2, messageId: id, retain: false, dup: false }, 5);
    const d = (await r.next((p) => p.cmd === 'disconnect')) as { reasonCode?: number };
    assert.equal(d.reasonCode, 0x93, 'Receive Maximum exceeded');
  });

  it('--mqtt-max-packet-size: told in CONNACK; a larger PUBLISH gets DISCONNECT 0x95, a smaller one goes through', async () => {
    const { r, connack } = await raw(5);
    assert.equal(connack.properties?.maximumPacketSize, 2048);
    r.send({ cmd: 'publish', topic: `devices/${device.id}/x`, payload: Buffer.alloc(4000, 1), qos: 0, retain: false, dup: false }, 5);
    const d = (await r.next((p) => p.cmd === 'disconnect')) as { reasonCode?: number };
    assert.equal(d.reasonCode, 0x95, 'Packet too large');
    const small = await clients.connect(url, { protocolVersion: 5, ...creds() });
    await small.publishAsync(`devices/${device.id}/x`, Buffer.alloc(1000), { qos: 1 });
  });

  it('--mqtt-max-inflight: a subscriber that does not acknowledge has 3 QoS 1 messages in flight, the rest wait', async () => {
    const { r } = await raw(5, { clientId: 'slow-reader' });
    r.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `devices/${device.id}/flood`, qos: 1 }] }, 5);
    await r.next((p) => p.cmd === 'suback');
    const publisher = await clients.connect(url, { protocolVersion: 5, ...creds() });
    for (let i = 0; i < 10; i++) await publisher.publishAsync(`devices/${device.id}/flood`, String(i), { qos: 1 });
    await sleep(300);
    const got = r.packets.filter((p) => p.cmd === 'publish') as Array<{ messageId?: number }>;
    assert.equal(got.length, 3, 'at most --mqtt-max-inflight unacknowledged');
    r.send({ cmd: 'puback', messageId: got[0]!.messageId!, reasonCode: 0 }, 5);
    await sleep(200);
    assert.equal(r.packets.filter((p) => p.cmd === 'publish').length, 4, 'one acknowledged, one more sent');
  });

  it('--mqtt-max-queued: an offline persistent session keeps the newest 5 of 20 messages', async () => {
    const opts = { protocolVersion: 5 as const, clientId: 'offline-meter', clean: false, properties: { sessionExpiryInterval: 600 }, ...creds() };
    const first = await clients.connect(url, opts);
    await first.subscribeAsync(`devices/${device.id}/queued`, { qos: 1 });
    await first.endAsync();
    const publisher = await clients.connect(url, { protocolVersion: 5, ...creds() });
    for (let i = 0; i < 20; i++) await publisher.publishAsync(`devices/${device.id}/queued`, String(i), { qos: 1 });
    const back = await clients.connectCollecting(url, opts);
    assert.equal(back.sessionPresent, true);
    for (const deadline = Date.now() + 3000; back.messages.length < 5 && Date.now() < deadline;) await sleep(50);
    await sleep(200);
    assert.deepEqual(back.messages.map((m) => m.payload), ['15', '16', '17', '18', '19']);
  });
});

describe('MQTT limits from CLOUDREST_* variables and the config file', () => {
  const data = tempDir();
  const raws: RawClient[] = [];
  let hub: HubProc;
  let device: { id: string; secret: string };
  const env = { CLOUDREST_MQTT_MAX_KEEPALIVE: '45', CLOUDREST_MQTT_RECEIVE_MAXIMUM: '7' };

  before(async () => {
    device = await addDevice(data.path, 'Configured');
    const config = join(data.path, 'hub.json');
    writeFileSync(config, JSON.stringify({ mqttMaxPacketSize: 4096, mqttMaxInflight: 2, mqttMaxQueued: 10 }));
    Object.assign(process.env, env);
    try {
      hub = await startHub(data.path, ['--config', config]);
    } finally {
      for (const k of Object.keys(env)) delete process.env[k];
    }
  });
  after(async () => {
    for (const r of raws) r.socket.destroy();
    await hub?.stop();
    data.remove();
  });

  it('the hub tells 5.0 clients what the environment and the config file set', async () => {
    const r = await RawClient.connect(hub.mqttPort!);
    raws.push(r);
    const connack = (await r.handshake(5, { keepalive: 0, username: device.id, password: Buffer.from(device.secret) })) as Connack;
    assert.equal(connack.reasonCode, 0);
    assert.deepEqual(
      { serverKeepAlive: connack.properties?.serverKeepAlive, receiveMaximum: connack.properties?.receiveMaximum, maximumPacketSize: connack.properties?.maximumPacketSize },
      { serverKeepAlive: 45, receiveMaximum: 7, maximumPacketSize: 4096 },
    );
  });

  it('an out-of-range value stops the hub at start, naming the option', async () => {
    const bad = await runClient(process.execPath, [join(import.meta.dirname, '../bin/cloudrest.js'), 'hub', '--data', data.path, '--mqtt-port', '0', '--http-port', '0', '--tunnel-port', '0', '--mqtt-receive-maximum', '0']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--mqtt-receive-maximum: must be >= 1/);
  });
});
