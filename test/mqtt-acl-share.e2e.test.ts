// Shared subscriptions (`$share/{group}/{filter}`, 5.0 §4.8.2) under the hub's ACL: what is checked is
// the filter after the share name, for ACL file rules, a device's own topics and a user's devices alike.
// A real hub process, mqtt.js (5.0) and mosquitto_sub (3.1.1, where `$share/` is only a topic filter to
// the client and the broker makes it shared).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MqttClient } from 'mqtt';
import { addDevice, addUser, login, startHub, tempDir, type HubProc } from './support/procs.js';
import { MqttClients, subackCodes } from './support/mqtt-peers.js';
import { mosquitto } from './mqtt-harness.js';

const EMAIL = 'share-owner@example.com';
const PASSWORD = 'correct horse battery';

/** Messages each client receives, by client. */
function counting(clients: MqttClient[]): number[] {
  const counts = clients.map(() => 0);
  clients.forEach((c, i) => c.on('message', () => counts[i]!++));
  return counts;
}

async function until(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !cond(); await sleep(25)) if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
}

describe('shared subscriptions under an ACL file that allows everything (#)', () => {
  const data = tempDir();
  const clients = new MqttClients();
  let hub: HubProc;
  let url: string;
  let device: { id: string; secret: string };

  before(async () => {
    device = await addDevice(data.path, 'Worker');
    const acl = join(data.path, 'acl.txt');
    writeFileSync(acl, 'allow all everyone #\n');
    hub = await startHub(data.path, ['--acl', acl]);
    url = `mqtt://127.0.0.1:${hub.mqttPort}`;
  });
  after(async () => {
    await clients.closeAll();
    await hub?.stop();
    data.remove();
  });

  it('$share/workers/# is granted, and the members share the messages, each once', async () => {
    const opts = { protocolVersion: 5 as const, username: device.id, password: device.secret };
    const a = await clients.connect(url, opts);
    const b = await clients.connect(url, opts);
    assert.deepEqual(await subackCodes(a, ['$share/workers/#']), [1]);
    assert.deepEqual(await subackCodes(b, ['$share/workers/jobs/+']), [1]);
    assert.deepEqual(await subackCodes(b, ['$share/workers/#']), [1]);
    const counts = counting([a, b]);
    const publisher = await clients.connect(url, opts);
    for (let i = 0; i < 10; i++) await publisher.publishAsync('jobs/build', String(i), { qos: 1 });
    // b also holds $share/workers/jobs/+, a group of its own: 10 more for b.
    await until(() => counts[0]! + counts[1]! === 20, `20 messages, got ${counts.join('+')}`);
    assert.ok(counts[0]! > 0 && counts[1]! > 10, `both members of $share/workers/# got some: ${counts.join(', ')}`);
  });

  it('mosquitto_sub (3.1.1) subscribes to $share/g/jobs/# and receives', async () => {
    const port = String(hub.mqttPort);
    const sub = mosquitto('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-V', 'mqttv311', '-u', device.id, '-P', device.secret, '-t', '$share/g/jobs/#', '-q', '1', '-v']);
    try {
      const publisher = await clients.connect(url, { protocolVersion: 4, username: device.id, password: device.secret });
      // Published until mosquitto_sub's subscription is in place.
      for (let i = 0; i < 50 && sub.lines.filter((l) => !l.startsWith('stderr:')).length === 0; i++) {
        await publisher.publishAsync('jobs/deploy', 'go', { qos: 1 });
        await sleep(100);
      }
      assert.deepEqual((await sub.waitForLines(1))[0], 'jobs/deploy go', sub.lines.join('\n'));
    } finally {
      sub.kill();
    }
  });
});

describe('shared subscriptions under the default rules and an ACL file rule', () => {
  const data = tempDir();
  const clients = new MqttClients();
  let hub: HubProc;
  let url: string;
  let mine: { id: string; secret: string };
  let other: { id: string; secret: string };
  let token: string;

  before(async () => {
    await addUser(data.path, EMAIL, PASSWORD);
    mine = await addDevice(data.path, 'Mine', EMAIL);
    other = await addDevice(data.path, 'Not mine', 'someone-else@example.com');
    const acl = join(data.path, 'acl.txt');
    writeFileSync(acl, 'allow subscribe users jobs/#\n');
    hub = await startHub(data.path, ['--acl', acl]);
    url = `mqtt://127.0.0.1:${hub.mqttPort}`;
    token = await login(hub.url, EMAIL, PASSWORD);
  });
  after(async () => {
    await clients.closeAll();
    await hub?.stop();
    data.remove();
  });

  it('an ACL rule grants $share/{group}/{filter} as it grants the filter', async () => {
    const user = await clients.connect(url, { protocolVersion: 5, username: EMAIL, password: token });
    assert.deepEqual(await subackCodes(user, ['$share/g/jobs/#', '$share/g/jobs/build', '$share/g/other/#']), [1, 1, 0x87]);
  });

  it('a device may share-subscribe to its own topics, not to another device\'s', async () => {
    const dev = await clients.connect(url, { protocolVersion: 5, username: mine.id, password: mine.secret });
    assert.deepEqual(await subackCodes(dev, [`$share/g/devices/${mine.id}/cmd`, `$share/g/devices/${other.id}/cmd`]), [1, 0x87]);
    const counts = counting([dev]);
    const self = await clients.connect(url, { protocolVersion: 5, username: mine.id, password: mine.secret });
    await self.publishAsync(`devices/${mine.id}/cmd`, 'reboot', { qos: 1 });
    await until(() => counts[0] === 1, 'the shared subscription delivers');
  });

  it('a user may share-subscribe to the devices they own, not to others', async () => {
    const user = await clients.connect(url, { protocolVersion: 4, username: EMAIL, password: token });
    assert.deepEqual(await subackCodes(user, [`$share/app/devices/${mine.id}/#`, `$share/app/devices/${other.id}/#`]), [1, 128]);
  });
});
