// A 5.0 client ends its session on the way out (DISCONNECT with Session Expiry Interval 0, 5.0
// §3.1.2.11.2, §3.14.2.2.2), against a real hub process on its SQLite database, with mqtt.js and raw
// packets for what mqtt.js would not send.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { addDevice, startHub, tempDir, type HubProc } from './support/procs.js';
import { MqttClients, nextMessage } from './support/mqtt-peers.js';
import { RawClient } from './mqtt-harness.js';

describe('MQTT 5 session expiry set on DISCONNECT, through the hub', () => {
  const data = tempDir();
  const clients = new MqttClients();
  let hub: HubProc;
  let device: { id: string; secret: string };
  let url: string;

  before(async () => {
    device = await addDevice(data.path, 'Meter');
    hub = await startHub(data.path);
    url = `mqtt://127.0.0.1:${hub.mqttPort}`;
  });
  after(async () => {
    await clients.closeAll();
    await hub?.stop();
    data.remove();
  });

  const creds = () => ({ username: device.id, password: device.secret });
  const persistent = (clientId: string) => ({ protocolVersion: 5 as const, clientId, clean: false, properties: { sessionExpiryInterval: 3600 }, ...creds() });
  const endWith = (c: MqttClient, properties: { sessionExpiryInterval: number }) => new Promise<void>((r) => c.end(false, { reasonCode: 0, properties }, () => r()));

  it('a DISCONNECT with Session Expiry Interval 0 ends the session: the next CONNECT finds none and gets no messages', async () => {
    const topic = `devices/${device.id}/cmd`;
    const first = await clients.connect(url, persistent('meter-ends'));
    await first.subscribeAsync(topic, { qos: 1 });
    await endWith(first, { sessionExpiryInterval: 0 });

    const back = await clients.connectCollecting(url, persistent('meter-ends'));
    assert.equal(back.sessionPresent, false, 'CONNACK Session Present 0: the session ended with the DISCONNECT');
    const publisher = await clients.connect(url, { protocolVersion: 5, ...creds() });
    await publisher.publishAsync(topic, 'for the old subscription', { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(back.messages, [], 'the old subscription went with the session');
    await publisher.endAsync();
    await back.client.endAsync();
  });

  it('the ended session is gone from the database too: still none after a restart', async () => {
    const first = await clients.connect(url, persistent('meter-restart'));
    await first.subscribeAsync(`devices/${device.id}/cfg`, { qos: 1 });
    await endWith(first, { sessionExpiryInterval: 0 });
    // A session kept to compare with: it must survive the restart.
    const kept = await clients.connect(url, persistent('meter-kept'));
    await kept.subscribeAsync(`devices/${device.id}/cfg`, { qos: 1 });
    await endWith(kept, { sessionExpiryInterval: 600 });

    await hub.stop();
    hub = await startHub(data.path);
    url = `mqtt://127.0.0.1:${hub.mqttPort}`;
    const resumed = await clients.connectCollecting(url, persistent('meter-kept'));
    assert.equal(resumed.sessionPresent, true, 'a session with expiry left is resumed after the restart');
    const ended = await clients.connectCollecting(url, persistent('meter-restart'));
    assert.equal(ended.sessionPresent, false, 'the session ended by DISCONNECT was not stored again');
    await resumed.client.endAsync();
    await ended.client.endAsync();
  });

  it('a DISCONNECT may not set an expiry when CONNECT asked for 0: DISCONNECT 0x82 back, and the will is sent', async () => {
    const watcher = await clients.connect(url, { protocolVersion: 5, ...creds() });
    const willTopic = `devices/${device.id}/will`;
    await watcher.subscribeAsync(willTopic, { qos: 1 });
    const will = nextMessage(watcher, (t) => t === willTopic);

    const raw = await RawClient.connect(hub.mqttPort!);
    const connack = await raw.handshake(5, { clientId: 'meter-bad-disconnect', ...creds(), password: Buffer.from(device.secret), will: { topic: willTopic, payload: Buffer.from('gone'), qos: 1, retain: false } });
    assert.equal(connack.reasonCode, 0);
    raw.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } }, 5);
    const answer = await raw.next((p) => p.cmd === 'disconnect');
    assert.equal((answer as { reasonCode?: number }).reasonCode, 0x82, 'Protocol Error');
    assert.ok(await raw.closesWithin(), 'the hub closes the connection');
    // Not a valid DISCONNECT (5.0 §3.14.2.2.2), so not the normal one that discards the will.
    assert.equal((await will).payload, 'gone');
    raw.socket.destroy();
  });
});
