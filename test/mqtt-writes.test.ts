// How the broker writes to a client: what one incoming read makes for a subscriber leaves in one write
// to its socket, large messages are not held back or copied into it, and the order never changes.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { generate, type IPublishPacket } from 'mqtt-packet';
import { startBroker, type RawClient, type TestBroker } from './mqtt-harness.js';

/** The broker's end of `client`'s connection, with every write to it counted. */
function countWrites(b: TestBroker, client: RawClient): { writes: number[] } {
  const socket = b.serverSockets().find((s) => s.remotePort === client.socket.localPort);
  assert.ok(socket !== undefined, "the broker's end of the subscriber's connection");
  const seen = { writes: [] as number[] };
  const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
  (socket as Socket & { write: (chunk: Buffer) => boolean }).write = (chunk: Buffer) => {
    seen.writes.push(chunk.length);
    return write(chunk);
  };
  return seen;
}

/** A raw subscriber to `filter` at QoS 0 and a raw publisher, both connected. */
async function pair(b: TestBroker, filter: string): Promise<{ sub: RawClient; pub: RawClient }> {
  const sub = await b.raw();
  await sub.handshake(4, { clientId: 'writes-sub' });
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] });
  await sub.next((p) => p.cmd === 'suback');
  const pub = await b.raw();
  await pub.handshake(4, { clientId: 'writes-pub' });
  return { sub, pub };
}

const publish = (topic: string, payload: Buffer): Buffer => generate({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false });

describe('MQTT writes to a client', () => {
  it('sends the 20 messages a publisher wrote at once to a subscriber in one write, in order', async () => {
    const b = await startBroker();
    try {
      const { sub, pub } = await pair(b, 'batch/#');
      const seen = countWrites(b, sub);
      pub.write(Buffer.concat(Array.from({ length: 20 }, (_, i) => publish(`batch/${i}`, Buffer.from(`message ${i}`)))));
      const got: IPublishPacket[] = [];
      for (let i = 0; i < 20; i++) got.push((await sub.next((p) => p.cmd === 'publish')) as IPublishPacket);
      assert.deepEqual(got.map((p) => `${p.topic} ${p.payload.toString()}`), Array.from({ length: 20 }, (_, i) => `batch/${i} message ${i}`));
      // One read at the broker is one tick: everything it produced for this subscriber goes in one write.
      // (The publisher's 20 PUBLISHes are 500 bytes: one segment on loopback, one read.)
      assert.equal(seen.writes.length, 1, `writes to the subscriber: ${JSON.stringify(seen.writes)}`);
      assert.equal(seen.writes[0], got.reduce((n, p) => n + 2 + 2 + p.topic.length + (p.payload as Buffer).length, 0));
    } finally {
      await b.stop();
    }
  });

  it('delivers large and small messages from one batch intact and in order', async () => {
    const b = await startBroker();
    try {
      const { sub, pub } = await pair(b, 'mixed/#');
      const payloads = [Buffer.from('small 0'), Buffer.alloc(40_000, 'a'), Buffer.from('small 2'), Buffer.alloc(20_000, 'b'), Buffer.alloc(100_000, 'c'), Buffer.from('small 5')];
      pub.write(Buffer.concat(payloads.map((p, i) => publish(`mixed/${i}`, p))));
      for (let i = 0; i < payloads.length; i++) {
        const p = (await sub.next((x) => x.cmd === 'publish')) as IPublishPacket;
        assert.equal(p.topic, `mixed/${i}`);
        assert.ok((p.payload as Buffer).equals(payloads[i]!), `payload ${i} arrived intact`);
      }
    } finally {
      await b.stop();
    }
  });
});
