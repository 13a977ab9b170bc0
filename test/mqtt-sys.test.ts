import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { MemoryMqttPersistence } from '../src/mqtt/memory-persistence.js';
import { startSysTopics, type SysTopics } from '../src/mqtt/sys-topics.js';
import { collect, mosquitto, sleep, startBroker, type TestBroker } from './mqtt-harness.js';

const INTERVAL_MS = 40;

/** Records every message a client receives, by topic, in order. */
function record(c: MqttClient): Array<[string, string]> {
  const got: Array<[string, string]> = [];
  c.on('message', (topic, payload) => got.push([topic, payload.toString()]));
  return got;
}

async function until(test: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('MQTT $SYS statistics topics', () => {
  let b: TestBroker;
  let sys: SysTopics;
  let clock = 1_000_000;
  const persistence = new MemoryMqttPersistence();
  before(async () => {
    b = await startBroker({ allowAnonymous: true, persistence });
    sys = startSysTopics(b.broker, { intervalMs: INTERVAL_MS, version: '9.8.7', now: () => clock });
  });
  after(async () => {
    sys.stop();
    await b.stop();
  });

  it('gives a client subscribed to $SYS/# the broker statistics, retained, with Mosquitto topic names', async () => {
    const pub = await b.client({ clientId: 'sys-pub' });
    await pub.publishAsync('plant/temp', '21.5', { qos: 1 });
    await pub.publishAsync('plant/state', 'on', { qos: 0, retain: true });
    const c = await b.client({ clientId: 'sys-reader' });
    const got = record(c);
    await c.subscribeAsync('$SYS/#', { qos: 0 });
    await until(() => got.some(([t, v]) => t === '$SYS/broker/clients/connected' && v === '2'), 'clients/connected = 2');
    const latest = new Map(got);
    assert.equal(latest.get('$SYS/broker/version'), 'cloudrest version 9.8.7');
    assert.equal(latest.get('$SYS/broker/uptime'), '0 seconds');
    assert.equal(latest.get('$SYS/broker/messages/received'), '2');
    assert.equal(latest.get('$SYS/broker/messages/received/qos1'), '1');
    assert.equal(latest.get('$SYS/broker/retained messages/count'), '1');
    assert.ok(Number(latest.get('$SYS/broker/bytes/received')) > 0);
    for (const name of ['clients/total', 'messages/sent', 'bytes/sent', 'subscriptions/count', 'messages/dropped']) {
      assert.ok(latest.has(`$SYS/broker/${name}`), `$SYS/broker/${name} is published`);
    }
    await c.endAsync();
    await pub.endAsync();
  });

  it('serves them to mosquitto_sub, as it would read them from Mosquitto', async () => {
    const sub = mosquitto('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', 'mqttv5', '-v', '-C', '2', '-t', '$SYS/broker/version', '-t', '$SYS/broker/messages/received/qos2']);
    try {
      assert.deepEqual((await sub.waitForLines(2)).sort(), ['$SYS/broker/messages/received/qos2 0', '$SYS/broker/version cloudrest version 9.8.7']);
    } finally {
      sub.kill();
    }
  });

  it('publishes a value again only when it changed', async () => {
    const c = await b.client({ clientId: 'sys-watcher' });
    const got = record(c);
    await c.subscribeAsync(['$SYS/broker/clients/connected', '$SYS/broker/uptime'], { qos: 0 });
    const connected = b.broker.connections;
    await until(() => got.some(([t, v]) => t === '$SYS/broker/clients/connected' && v === String(connected)), 'clients/connected up to date');
    // Several rounds with nothing new: nothing is sent.
    const seen = got.length;
    await sleep(INTERVAL_MS * 5);
    assert.equal(got.length, seen, JSON.stringify(got));
    clock += 5_000;
    const other = await b.client({ clientId: 'sys-other' });
    await until(() => got.length >= seen + 2, 'the changed values');
    await sleep(INTERVAL_MS * 3);
    assert.deepEqual(got.slice(seen).sort(), [
      ['$SYS/broker/clients/connected', String(connected + 1)],
      ['$SYS/broker/uptime', '5 seconds'],
    ]);
    await other.endAsync();
    await c.endAsync();
  });

  it('does not give $SYS topics to a client subscribed to # or +/broker/#', async () => {
    const wild = await b.client({ clientId: 'sys-wild' });
    const got = record(wild);
    await wild.subscribeAsync(['#', '+/broker/#', '+/+/uptime'], { qos: 0 });
    const control = await b.client({ clientId: 'sys-control' });
    const controlGot = record(control);
    await control.subscribeAsync('$SYS/broker/uptime', { qos: 0 });
    // A change that every wildcard above would match if $SYS were not excluded.
    clock += 1_000;
    await until(() => controlGot.some(([, v]) => v !== controlGot[0]![1]), 'a new uptime');
    const mark = collect(wild, 1);
    await control.publishAsync('ordinary/topic', 'x', { qos: 1 });
    assert.equal((await mark)[0]!.topic, 'ordinary/topic', 'the wildcard subscriber works');
    assert.deepEqual(got.filter(([t]) => t.startsWith('$')), []);
    await wild.endAsync();
    await control.endAsync();
  });

  it('keeps $SYS values out of the persistence store, and refuses them from clients', async () => {
    assert.ok(b.broker.retainedCount > 10);
    const stored = await persistence.allRetained();
    assert.deepEqual(stored.map((m) => m.topic), ['plant/state']);
    const c = await b.client({ protocolVersion: 5, clientId: 'sys-forger' });
    await assert.rejects(c.publishAsync('$SYS/broker/uptime', 'forever', { qos: 1 }), (e: { code?: number }) => e.code === 0x87);
    await c.endAsync();
  });
});
