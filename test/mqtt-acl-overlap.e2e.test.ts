// A subscription filter that overlaps topics the subscriber may not read is granted, and each message
// is delivered only where the subscriber may read its topic (as Mosquitto does); a filter no readable
// topic could match is still refused. Real hub processes, mqtt.js and mosquitto_sub, a real agent
// for a device claim that changes who may read a device's topics while subscriptions are open.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MqttClient } from 'mqtt';
import { waitForOutbox } from './support/mail.js';
import { MqttClients, subackCodes } from './support/mqtt-peers.js';
import { addDevice, addUser, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';
import { mosquitto } from './mqtt-harness.js';

const EMAIL = 'reader@example.com';
const PASSWORD = 'correct horse battery';

/** Every message `client` receives from now on, as `topic payload`. */
function received(client: MqttClient): string[] {
  const got: string[] = [];
  client.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
  return got;
}

/** Waits for `marker` to arrive at `seen` (a message published after the others: they would have arrived before it). */
async function settled(seen: string[], marker: string): Promise<void> {
  for (const deadline = Date.now() + 5_000; !seen.includes(marker); await sleep(25)) if (Date.now() > deadline) throw new Error(`no ${marker}; got ${JSON.stringify(seen)}`);
}

describe('an ACL denying one topic under a filter that allows the rest', () => {
  const data = tempDir();
  const clients = new MqttClients();
  let hub: HubProc;
  let url: string;
  let device: { id: string; secret: string };

  before(async () => {
    device = await addDevice(data.path, 'Publisher');
    const acl = join(data.path, 'acl.txt');
    writeFileSync(acl, 'deny subscribe everyone secret/x\nallow all everyone #\n');
    hub = await startHub(data.path, ['--acl', acl]);
    url = `mqtt://127.0.0.1:${hub.mqttPort}`;
  });
  after(async () => {
    await clients.closeAll();
    await hub?.stop();
    data.remove();
  });

  const creds = () => ({ username: device.id, password: device.secret });

  it('# is granted, and delivers every topic but secret/x', async () => {
    const sub = await clients.connect(url, { protocolVersion: 5, ...creds() });
    assert.deepEqual(await subackCodes(sub, ['#']), [1]);
    const seen = received(sub);
    const pub = await clients.connect(url, { protocolVersion: 5, ...creds() });
    for (const t of ['secret/x', 'secret/y', 'public/a', 'secret/x', 'marker']) await pub.publishAsync(t, 'm', { qos: 1 });
    await settled(seen, 'marker m');
    assert.deepEqual(seen, ['secret/y m', 'public/a m', 'marker m']);
  });

  it('retained messages follow the same rule when the subscription is made', async () => {
    const pub = await clients.connect(url, { protocolVersion: 5, ...creds() });
    await pub.publishAsync('secret/x', 'hidden', { qos: 1, retain: true });
    await pub.publishAsync('secret/z', 'shown', { qos: 1, retain: true });
    const sub = await clients.connect(url, { protocolVersion: 5, ...creds() });
    const seen = received(sub);
    assert.deepEqual(await subackCodes(sub, ['secret/+']), [1]);
    await pub.publishAsync('secret/marker', 'm', { qos: 1 });
    await settled(seen, 'secret/marker m');
    assert.deepEqual(seen, ['secret/z shown', 'secret/marker m']);
  });

  it('a filter only the denied topic could match is refused', async () => {
    const sub = await clients.connect(url, { protocolVersion: 5, ...creds() });
    assert.deepEqual(await subackCodes(sub, ['secret/x', 'secret/x/#', 'secret/y']), [0x87, 1, 1], 'secret/x/# also matches secret/x/1, which is allowed');
  });

  it('mosquitto_sub -t "#" (3.1.1) gets the allowed topics and not secret/x', async () => {
    const sub = mosquitto('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(hub.mqttPort), '-V', 'mqttv311', '-u', device.id, '-P', device.secret, '-t', '#', '-q', '1', '-v']);
    try {
      const pub = await clients.connect(url, { protocolVersion: 4, ...creds() });
      const lines = () => sub.lines.filter((l) => !l.startsWith('stderr:'));
      for (let i = 0; i < 50 && !lines().includes('ready go'); i++) {
        await pub.publishAsync('ready', 'go', { qos: 1 });
        await sleep(100);
      }
      await pub.publishAsync('secret/x', 'hidden', { qos: 1 });
      await pub.publishAsync('done', 'now', { qos: 1 });
      for (const deadline = Date.now() + 3000; !lines().includes('done now') && Date.now() < deadline;) await sleep(25);
      assert.ok(lines().includes('done now'), sub.lines.join('\n'));
      assert.ok(!lines().some((l) => l.startsWith('secret/x ')), `secret/x delivered: ${lines().join('\n')}`);
    } finally {
      sub.kill();
    }
  });
});

describe('a user subscribed to devices/+/events under the default rules', () => {
  const data = tempDir();
  const clients = new MqttClients();
  const procs: Proc[] = [];
  let hub: HubProc;
  let url: string;
  let mine: { id: string; secret: string };
  let theirs: { id: string; secret: string };
  let planted: { id: string; secret: string };
  let token: string;

  before(async () => {
    await addUser(data.path, EMAIL, PASSWORD);
    mine = await addDevice(data.path, 'Mine', EMAIL);
    theirs = await addDevice(data.path, 'Theirs', 'someone-else@example.com');
    planted = await addDevice(data.path, 'Unclaimed'); // no owner until she accepts its claim
    hub = await startHub(data.path);
    url = `mqtt://127.0.0.1:${hub.mqttPort}`;
    token = await login(hub.url, EMAIL, PASSWORD);
  });
  after(async () => {
    await clients.closeAll();
    await Promise.all(procs.map((p) => p.stop()));
    await hub?.stop();
    data.remove();
  });

  const asDevice = (d: { id: string; secret: string }) => clients.connect(url, { protocolVersion: 5, username: d.id, password: d.secret });

  it('receives the events of her own devices only', async () => {
    const user = await clients.connect(url, { protocolVersion: 5, username: EMAIL, password: token });
    assert.deepEqual(await subackCodes(user, ['devices/+/events']), [1]);
    const seen = received(user);
    const other = await asDevice(theirs);
    await other.publishAsync(`devices/${theirs.id}/events`, 'not hers', { qos: 1 });
    const own = await asDevice(mine);
    await own.publishAsync(`devices/${mine.id}/events`, 'hers', { qos: 1 });
    await own.publishAsync(`devices/${mine.id}/events`, 'marker', { qos: 1 });
    await settled(seen, `devices/${mine.id}/events marker`);
    assert.deepEqual(seen, [`devices/${mine.id}/events hers`, `devices/${mine.id}/events marker`]);
  });

  it('a device under devices/+/events gets its own events only', async () => {
    const dev = await asDevice(mine);
    assert.deepEqual(await subackCodes(dev, ['devices/+/events', `devices/${theirs.id}/#`]), [1, 0x87]);
    const seen = received(dev);
    const other = await asDevice(theirs);
    await other.publishAsync(`devices/${theirs.id}/events`, 'not mine', { qos: 1 });
    const self = await asDevice(mine);
    await self.publishAsync(`devices/${mine.id}/events`, 'marker', { qos: 1 });
    await settled(seen, `devices/${mine.id}/events marker`);
    assert.deepEqual(seen, [`devices/${mine.id}/events marker`]);
  });

  it('a device she accepts while subscribed: its events reach her subscription from then on', async () => {
    const user = await clients.connect(url, { protocolVersion: 5, username: EMAIL, password: token });
    assert.deepEqual(await subackCodes(user, ['devices/+/events']), [1]);
    const seen = received(user);
    const unclaimed = await asDevice(planted);
    const own = await asDevice(mine);
    await unclaimed.publishAsync(`devices/${planted.id}/events`, 'before', { qos: 1 });
    await own.publishAsync(`devices/${mine.id}/events`, 'marker 1', { qos: 1 });
    await settled(seen, `devices/${mine.id}/events marker 1`);
    assert.ok(!seen.includes(`devices/${planted.id}/events before`), 'not hers yet');

    // The device reports her email through its agent; she accepts the claim mailed to her.
    const rest = await startDevice(EMAIL);
    procs.push(rest);
    procs.push(await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: planted.id, secret: planted.secret, api: rest.url }));
    const [mail] = await waitForOutbox(join(data.path, 'outbox'), 1);
    const claimId = /claimId=([A-Za-z0-9_-]+)/.exec(mail!.mail.text ?? '')![1]!;
    const ok = await fetch(`${hub.url}/v1/ownership`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ claimId, decision: 'accept', password: PASSWORD }) });
    assert.equal(ok.status, 200);

    // The hub re-reads the owner after the accept; publish until her subscription sees it.
    for (let i = 0; i < 50 && !seen.includes(`devices/${planted.id}/events after`); i++) {
      await unclaimed.publishAsync(`devices/${planted.id}/events`, 'after', { qos: 1 });
      await sleep(100);
    }
    assert.ok(seen.includes(`devices/${planted.id}/events after`), `got ${JSON.stringify(seen)}`);
  });

  it('a filter none of her topics could match is still refused', async () => {
    const user = await clients.connect(url, { protocolVersion: 5, username: EMAIL, password: token });
    assert.deepEqual(await subackCodes(user, [`devices/${theirs.id}/#`, 'elsewhere/#', '#']), [0x87, 0x87, 1]);
  });
});
