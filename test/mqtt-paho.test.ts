// Paho for Python (Debian python3-paho-mqtt, 1.6 API) against the broker: the pyenv `python3` on PATH
// lacks it, so the system interpreter is used.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { collect, startBroker, type TestBroker } from './mqtt-harness.js';

const SCRIPT = fileURLToPath(new URL('./fixtures/paho_qos2.py', import.meta.url));

interface PahoEvent {
  event: string;
  [field: string]: unknown;
}

async function runPaho(port: number, version: '311' | '5', topic: string): Promise<PahoEvent[]> {
  const child = spawn('/usr/bin/python3', [SCRIPT, String(port), version, topic], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 0, `paho exited ${code}: ${out}${err}`);
  return out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as PahoEvent);
}

describe('MQTT with Paho for Python', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker({ allowAnonymous: true });
  });
  after(() => b.stop());

  it('completes a QoS 2 round trip between Paho clients in 3.1.1, delivered once to Paho and to mqtt.js', async () => {
    const watcher = await b.client({ protocolVersion: 4 });
    await watcher.subscribeAsync('paho/311/qos2', { qos: 2 });
    const seen = collect(watcher, 1);
    const events = await runPaho(b.port, '311', 'paho/311/qos2');
    assert.deepEqual(events.filter((e) => e.event === 'connack').map((e) => e.rc), [0, 0]);
    assert.deepEqual(events.find((e) => e.event === 'suback')?.granted, [2]);
    const messages = events.filter((e) => e.event === 'message');
    assert.deepEqual(messages, [{ event: 'message', topic: 'paho/311/qos2', payload: 'exactly once', qos: 2, retain: false }]);
    assert.equal(events.filter((e) => e.event === 'pubcomp').length, 1);
    const [m] = await seen;
    assert.equal(m!.payload, 'exactly once');
    assert.equal(m!.packet.qos, 2);
    assert.equal(b.broker.inflight, 0, 'every QoS 2 exchange completed');
  });

  it('completes a QoS 2 round trip in 5.0 with user properties, content type and the subscription identifier', async () => {
    const events = await runPaho(b.port, '5', 'paho/5/qos2');
    assert.deepEqual(events.filter((e) => e.event === 'connack').map((e) => e.rc), [0, 0]);
    assert.deepEqual(events.find((e) => e.event === 'suback')?.granted, [2]);
    const messages = events.filter((e) => e.event === 'message');
    assert.deepEqual(messages, [
      {
        event: 'message',
        topic: 'paho/5/qos2',
        payload: 'exactly once',
        qos: 2,
        retain: false,
        user_properties: [['origin', 'paho']],
        subscription_ids: [7],
        content_type: 'text/plain',
      },
    ]);
    assert.equal(events.filter((e) => e.event === 'pubcomp').length, 1);
    assert.equal(b.broker.inflight, 0);
  });
});
