import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { IConnackPacket, IPublishPacket } from 'mqtt-packet';
import { MemoryMqttPersistence } from '../src/mqtt/memory-persistence.js';
import type { MqttPersistence } from '../src/mqtt/persistence.js';
import { SqliteMqttPersistence } from '../src/store/sqlite/mqtt-persistence.js';
import { collect, startBroker } from './mqtt-harness.js';

const root = mkdtempSync(join(tmpdir(), 'cloudrest-mqtt-restart-'));
after(() => rmSync(root, { recursive: true, force: true }));

interface Backend {
  name: string;
  first(): Promise<MqttPersistence>;
  /** The persistence of the broker after the restart. */
  second(previous: MqttPersistence): Promise<MqttPersistence>;
}

const backends: Backend[] = [
  { name: 'memory', first: () => Promise.resolve(new MemoryMqttPersistence()), second: (p) => Promise.resolve(p) },
  {
    name: 'SQLite',
    first: () => SqliteMqttPersistence.open(join(root, 'hub.db')),
    second: async (p) => {
      await p.close();
      return SqliteMqttPersistence.open(join(root, 'hub.db'));
    },
  },
];

for (const backend of backends) {
  describe(`MQTT broker restart with ${backend.name} persistence`, () => {
    it('keeps persistent sessions, queued and in-flight QoS 1/2 messages, QoS 2 receive state and retained messages', async () => {
      const p1 = await backend.first();
      const a = await startBroker({ allowAnonymous: true, persistence: p1 });
      let p2: MqttPersistence | undefined;
      try {
        // A v5 subscriber that goes offline with a backlog.
        const sub = await a.client({ protocolVersion: 5, clientId: 'r-sub', clean: false, properties: { sessionExpiryInterval: 3600 } });
        await sub.subscribeAsync('r/q/#', { qos: 2 });
        await sub.endAsync();
        // A subscriber holding an unacknowledged QoS 1 message.
        const inflight = await a.raw();
        await inflight.handshake(4, { clientId: 'r-inflight', clean: false });
        inflight.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'r/inflight', qos: 1 }] });
        await inflight.next((x) => x.cmd === 'suback');
        const pub = await a.client({ protocolVersion: 5 });
        await pub.publishAsync('r/inflight', 'unacked', { qos: 1 });
        const sent = (await inflight.next((x) => x.cmd === 'publish')) as IPublishPacket;
        await pub.publishAsync('r/q/1', 'queued one', { qos: 1 });
        await pub.publishAsync('r/q/2', 'queued two', { qos: 2 });
        await pub.publishAsync('r/retained', 'kept', { qos: 1, retain: true });
        // A publisher between PUBREC and PUBREL.
        const q2 = await a.raw();
        await q2.handshake(5, { clientId: 'r-q2', clean: false, properties: { sessionExpiryInterval: 3600 } });
        q2.send({ cmd: 'publish', topic: 'r/q2', payload: Buffer.from('once'), qos: 2, messageId: 11, dup: false, retain: false }, 5);
        assert.equal((await q2.next()).cmd, 'pubrec');
        await a.stop();

        p2 = await backend.second(p1);
        const b = await startBroker({ allowAnonymous: true, persistence: p2 });
        try {
          const back = b.unconnected({ protocolVersion: 5, clientId: 'r-sub', clean: false, properties: { sessionExpiryInterval: 3600 } });
          const got = collect(back, 2);
          back.connect();
          assert.deepEqual((await got).map((g) => g.payload).sort(), ['queued one', 'queued two']);

          const again = await b.raw();
          const ack = await again.handshake(4, { clientId: 'r-inflight', clean: false });
          assert.equal(ack.sessionPresent, true);
          const redelivered = (await again.next((x) => x.cmd === 'publish')) as IPublishPacket;
          assert.deepEqual([redelivered.dup, redelivered.messageId, redelivered.payload.toString()], [true, sent.messageId, 'unacked']);

          const late = await b.client({ protocolVersion: 4 });
          const retained = collect(late, 1);
          await late.subscribeAsync('r/retained', { qos: 1 });
          const [r] = await retained;
          assert.deepEqual([r!.payload, r!.packet.retain], ['kept', true]);

          const watcher = await b.client({ protocolVersion: 4 });
          await watcher.subscribeAsync('r/q2', { qos: 2 });
          const seen: string[] = [];
          watcher.on('message', (_t, m) => seen.push(m.toString()));
          const q2b = await b.raw();
          const ack2 = (await q2b.handshake(5, { clientId: 'r-q2', clean: false, properties: { sessionExpiryInterval: 3600 } })) as IConnackPacket;
          assert.equal(ack2.sessionPresent, true);
          // The PUBLISH again before PUBREL: acknowledged, not delivered again.
          q2b.send({ cmd: 'publish', topic: 'r/q2', payload: Buffer.from('once'), qos: 2, messageId: 11, dup: true, retain: false }, 5);
          assert.equal((await q2b.next()).cmd, 'pubrec');
          q2b.send({ cmd: 'pubrel', messageId: 11 }, 5);
          const comp = await q2b.next();
          assert.deepEqual([comp.cmd, (comp as { reasonCode?: number }).reasonCode ?? 0], ['pubcomp', 0]);
          assert.deepEqual(seen, []);
        } finally {
          await b.stop();
        }
      } finally {
        await (p2 ?? p1).close();
      }
    });
  });
}
