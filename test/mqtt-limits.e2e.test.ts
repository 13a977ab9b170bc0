// Issue 12 against a real hub process with mqtt.js clients: topics too deep for the stack, retained
// quotas, and the hub-owned devices/{id}/status topic. Limits are passed as CLOUDREST_* variables so
// that these tests also run (and fail on behaviour, not on an unknown flag) against a hub without them.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import type { MqttClient } from 'mqtt';
import { MqttClients, nextMessage, subackCodes } from './support/mqtt-peers.js';
import { addDevice, addUser, login, startHub, tempDir, type HubProc } from './support/procs.js';

const EMAIL = 'limits@example.com';
const PASSWORD = 'limits password 1';

/** Starts a hub with extra CLOUDREST_* variables (the child inherits this process's environment). */
async function hubWithEnv(data: string, env: Record<string, string>): Promise<HubProc> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await startHub(data);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** A topic of `levels` levels under `prefix` (itself counted). */
function deepTopic(prefix: string, levels: number): string {
  const own = prefix.split('/').length;
  return `${prefix}/${'x/'.repeat(levels - own - 1)}end`;
}

/** Resolves true if the client's connection closes within `ms`, false if it stays open. */
function closesWithin(client: MqttClient, ms: number): Promise<boolean> {
  if (!client.connected) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      client.off('close', onClose);
      resolve(false);
    }, ms);
    const onClose = (): void => {
      clearTimeout(t);
      resolve(true);
    };
    client.once('close', onClose);
  });
}

/** The reason code of a v5 QoS 1 publish's PUBACK (0 when accepted). */
async function pubackCode(client: MqttClient, topic: string, payload: string | Buffer, retain = true): Promise<number> {
  try {
    const packet = await client.publishAsync(topic, payload, { qos: 1, retain });
    return (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (typeof code !== 'number') throw err;
    return code;
  }
}

/** Subscribes to `filter` and gathers the retained messages that arrive within `ms` (or until `count` came). */
async function retainedOf(client: MqttClient, filter: string, count: number, ms = 10_000): Promise<Map<string, Buffer>> {
  const got = new Map<string, Buffer>();
  const on = (topic: string, payload: Buffer, packet: { retain: boolean }): void => {
    if (packet.retain) got.set(topic, payload);
  };
  client.on('message', on);
  try {
    await client.subscribeAsync(filter, { qos: 1 });
    for (const deadline = Date.now() + ms; got.size < count && Date.now() < deadline;) await sleep(20);
  } finally {
    client.off('message', on);
  }
  return got;
}

/** How many of `n` subscribers of `filter` lose their connection within a second of their SUBACK. */
async function subscribersDropped(clients: MqttClients, url: string, opts: object, filter: string, n: number): Promise<number> {
  const subs = await Promise.all(Array.from({ length: n }, () => clients.connect(url, opts)));
  await Promise.all(subs.map((c) => c.subscribeAsync(filter, { qos: 1 }).catch(() => undefined)));
  const closed = await Promise.all(subs.map((c) => closesWithin(c, 1_000)));
  return closed.filter(Boolean).length;
}

describe('MQTT limits in the hub: deep topics, retained quotas, the hub-owned status topic', () => {
  let data: { path: string; remove(): void };
  let hub: HubProc | undefined;
  let deviceId: string;
  let deviceSecret: string;
  let token: string;
  const clients = new MqttClients();
  const url = () => `mqtt://127.0.0.1:${hub!.mqttPort}`;
  const device = (protocolVersion: 4 | 5 = 5) => ({ protocolVersion, username: deviceId, password: deviceSecret });
  const user = (protocolVersion: 4 | 5 = 5) => ({ protocolVersion, username: EMAIL, password: token });

  async function restart(env: Record<string, string> = {}): Promise<void> {
    await clients.closeAll();
    await hub?.stop();
    hub = await hubWithEnv(data.path, env);
    token = await login(hub.url, EMAIL, PASSWORD);
  }

  before(async () => {
    data = tempDir('cloudrest-mqtt-limits-');
    await addUser(data.path, EMAIL, PASSWORD);
    ({ id: deviceId, secret: deviceSecret } = await addDevice(data.path, 'Deep', EMAIL));
  });
  after(async () => {
    await clients.closeAll();
    await hub?.stop();
    data?.remove();
  });

  it('a retained PUBLISH on a 30,000-level topic is refused (5.0 PUBACK 0x90, 3.1.1 closed) and devices/{id}/# subscribers stay connected', async () => {
    await restart();
    const pub = await clients.connect(url(), device());
    assert.equal(await pubackCode(pub, `devices/${deviceId}/ok`, 'fine'), 0);
    const deep = deepTopic(`devices/${deviceId}`, 30_000);
    const code = await pubackCode(pub, deep, 'deep');
    // 3.1.1 has no refusal: the connection is closed.
    const old = await clients.connect(url(), device(4));
    const closed = closesWithin(old, 10_000);
    old.publish(deep, 'deep', { qos: 1, retain: true });
    const oldClosed = await closed;

    assert.equal(await subscribersDropped(clients, url(), user(), `devices/${deviceId}/#`, 20), 0, 'subscribers disconnected after SUBACK');
    assert.equal(code, 0x90);
    assert.equal(oldClosed, true, 'the 3.1.1 publisher is disconnected');
    const sub = await clients.connect(url(), user());
    const retained = await retainedOf(sub, `devices/${deviceId}/#`, 1);
    assert.deepEqual([...retained.keys()], [`devices/${deviceId}/ok`]);
    const live = nextMessage(sub, (t) => t === `devices/${deviceId}/after`);
    await pub.publishAsync(`devices/${deviceId}/after`, 'still here', { qos: 1 });
    assert.equal((await live).payload, 'still here');
    assert.equal(await closesWithin(sub, 500), false, 'the subscriber is still connected');
    // A filter over the limit gets SUBACK 0x8F.
    assert.deepEqual(await subackCodes(sub, [`${deepTopic(`devices/${deviceId}`, 200)}/#`]), [0x8f]);
  });

  it('with the topic limits raised to the protocol maximum, a 30,000-level retained message reaches a devices/{id}/# subscriber', async () => {
    await restart({ CLOUDREST_MQTT_MAX_TOPIC_LEVELS: '65535', CLOUDREST_MQTT_MAX_TOPIC_BYTES: '65535' });
    const pub = await clients.connect(url(), device());
    const deep = deepTopic(`devices/${deviceId}/raised`, 30_000);
    assert.equal(await pubackCode(pub, deep, 'deep but allowed'), 0);
    const sub = await clients.connect(url(), user());
    const retained = await retainedOf(sub, `devices/${deviceId}/#`, 2);
    assert.equal(retained.get(deep)?.toString(), 'deep but allowed');
    assert.equal(retained.get(`devices/${deviceId}/ok`)?.toString(), 'fine');
    assert.equal(await closesWithin(sub, 500), false, 'the subscriber is still connected');
    // Cleared, so the next test starts from the database alone.
    assert.equal(await pubackCode(pub, deep, ''), 0);
  });

  it('a 30,000-level retained message already in the database is skipped at start with a warning; subscribers stay connected', async () => {
    await hub?.stop();
    const deep = deepTopic(`devices/${deviceId}/stored`, 30_000);
    const db = new Database(join(data.path, 'cloudrest.db'));
    try {
      // As a hub before the retained quotas stored them: no owner, no charge.
      const insert = db.prepare('insert into mqtt_retained (topic, payload, qos) values (?, ?, 1)');
      insert.run(deep, Buffer.from('from the old hub'));
      insert.run(`devices/${deviceId}/legacy`, Buffer.alloc(4096, 1));
    } finally {
      db.close();
    }
    hub = undefined;
    await restart();
    assert.equal(await subscribersDropped(clients, url(), user(), `devices/${deviceId}/#`, 20), 0, 'subscribers disconnected after SUBACK');
    const skipped = await hub!.waitForLog('mqtt: stored retained messages skipped: topic over the limits');
    assert.equal(skipped.skipped, 1);
    const sub = await clients.connect(url(), user());
    const retained = await retainedOf(sub, `devices/${deviceId}/#`, 2);
    assert.deepEqual([...retained.keys()].sort(), [`devices/${deviceId}/legacy`, `devices/${deviceId}/ok`]);
    assert.ok(retained.get(`devices/${deviceId}/legacy`)?.equals(Buffer.alloc(4096, 1)), 'an older row, read from the database on delivery');
    assert.equal(await closesWithin(sub, 500), false, 'the subscriber is still connected');
    assert.equal(await pubackCode(await clients.connect(url(), device()), `devices/${deviceId}/legacy`, ''), 0);
  });

  it('retained messages past the per-owner count are refused (5.0 PUBACK 0x97, HTTP 429); replacing and clearing are always accepted', async () => {
    await restart({ CLOUDREST_MQTT_MAX_RETAINED_PER_OWNER: '5' });
    const prefix = `devices/${deviceId}/quota`;
    const dev = await clients.connect(url(), device());
    // The device already has devices/{id}/ok.
    for (let i = 1; i <= 4; i++) assert.equal(await pubackCode(dev, `${prefix}/${i}`, `v${i}`), 0, `message ${i}`);
    assert.equal(await pubackCode(dev, `${prefix}/5`, 'one too many'), 0x97);
    assert.equal(await pubackCode(dev, `${prefix}/1`, 'replaced'), 0, 'replacing one of its own');
    assert.equal(await pubackCode(dev, `${prefix}/2`, ''), 0, 'clearing one');
    assert.equal(await pubackCode(dev, `${prefix}/5`, 'room again'), 0, 'a new one once cleared');
    // Not retained is not lost: a non-retained publish goes through, and so does a 3.1.1 retained one,
    // live, without being retained.
    const watcher = await clients.connect(url(), user());
    await watcher.subscribeAsync(`${prefix}/#`, { qos: 1 });
    const live = nextMessage(watcher, (t) => t === `${prefix}/6`);
    const old = await clients.connect(url(), device(4));
    await old.publishAsync(`${prefix}/6`, 'live only', { qos: 1, retain: true });
    assert.equal((await live).payload, 'live only');
    const late = await clients.connect(url(), user());
    const retained = await retainedOf(late, `${prefix}/#`, 5, 3_000);
    assert.deepEqual([...retained.keys()].sort(), [`${prefix}/1`, `${prefix}/3`, `${prefix}/4`, `${prefix}/5`]);
    assert.equal(retained.get(`${prefix}/1`)?.toString(), 'replaced');

    // The user has a quota of their own, over HTTP as over MQTT.
    const post = async (topic: string, body: string) => {
      const r = await fetch(`${hub!.url}/v1/topics/${topic}?retain=true&qos=1`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body });
      return [r.status, r.status === 200 ? 'ok' : ((await r.json()) as { error: { code: string } }).error.code];
    };
    for (let i = 1; i <= 5; i++) assert.deepEqual(await post(`${prefix}/user/${i}`, 'u'), [200, 'ok'], `user message ${i}`);
    assert.deepEqual(await post(`${prefix}/user/6`, 'u'), [429, 'CR_ERR_RETAINED_QUOTA']);
    assert.deepEqual(await post(`${prefix}/user/1`, ''), [200, 'ok'], 'clearing over HTTP');
    assert.deepEqual(await post(`${prefix}/user/6`, 'u'), [200, 'ok']);
    const text = await (await fetch(`${hub!.url}/metrics`)).text();
    assert.match(text, /^cloudrest_mqtt_retained_refused_total [1-9]/m);
  });

  it('retained bytes are limited per owner and in all: large messages past them get 0x97', async () => {
    const mib = 1024 * 1024;
    await restart({ CLOUDREST_MQTT_MAX_RETAINED_BYTES_PER_OWNER: String(3 * mib), CLOUDREST_MQTT_MAX_RETAINED_BYTES: String(5 * mib) });
    const big = Buffer.alloc(mib - 1024, 7);
    const dev = await clients.connect(url(), device());
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push(await pubackCode(dev, `devices/${deviceId}/big/${i}`, big));
    assert.deepEqual(codes, [0, 0, 0, 0x97], 'three fit in 3 MiB');
    // The owner, below their own quota, meets the hub's.
    const owner = await clients.connect(url(), user());
    const ownerCodes: number[] = [];
    for (let i = 0; i < 3; i++) ownerCodes.push(await pubackCode(owner, `devices/${deviceId}/owner-big/${i}`, big));
    assert.deepEqual(ownerCodes, [0, 0, 0x97], 'five in the hub in all');
    // Large retained payloads are read back from the database, byte for byte.
    const sub = await clients.connect(url(), user());
    const retained = await retainedOf(sub, `devices/${deviceId}/big/#`, 3);
    assert.equal(retained.size, 3);
    for (const payload of retained.values()) assert.ok(payload.equals(big));
  });

  it('devices/{id}/status is the hub\'s: a device or its owner cannot publish it (5.0 0x87, 3.1.1 dropped, HTTP 403)', async () => {
    await restart();
    const topic = `devices/${deviceId}/status`;
    const dev = await clients.connect(url(), device());
    assert.equal(await pubackCode(dev, topic, '{"online":true,"at":"2099-01-01T00:00:00.000Z"}'), 0x87);
    const owner = await clients.connect(url(), user());
    assert.equal(await pubackCode(owner, topic, '{"online":true}'), 0x87);
    const watcher = await clients.connect(url(), user());
    const seen: string[] = [];
    watcher.on('message', (t, payload) => {
      if (t === topic) seen.push(payload.toString());
    });
    await watcher.subscribeAsync(topic, { qos: 1 });
    const old = await clients.connect(url(), device(4));
    await old.publishAsync(topic, '{"online":true,"forged":true}', { qos: 1, retain: true });
    const r = await fetch(`${hub!.url}/v1/topics/${topic}?retain=true`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '{"online":true}' });
    assert.equal(r.status, 403);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'CR_ERR_TOPIC_FORBIDDEN');
    // A round trip on another topic: anything the hub had accepted would have arrived by now.
    const marker = nextMessage(watcher, (t) => t === `devices/${deviceId}/marker`);
    await watcher.subscribeAsync(`devices/${deviceId}/marker`, { qos: 1 });
    await dev.publishAsync(`devices/${deviceId}/marker`, 'm', { qos: 1 });
    await marker;
    assert.deepEqual(seen, []);
    const late = await clients.connect(url(), user());
    assert.equal((await retainedOf(late, topic, 1, 1_000)).size, 0, 'no forged status is retained');
  });
});
