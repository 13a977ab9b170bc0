import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { generate, type IDisconnectPacket } from 'mqtt-packet';
import { collect, startBroker, type RawClient, type TestBroker } from './mqtt-harness.js';

/** PUBLISH QoS 0 with `topic` given as raw bytes. */
function publishWithTopicBytes(topic: number[], v5: boolean): number[] {
  const body = [topic.length >> 8, topic.length & 0xff, ...topic, ...(v5 ? [0x00] : []), 0x78];
  return [0x30, body.length, ...body];
}

describe('MQTT malformed input closes only the offending connection', () => {
  let b: TestBroker;
  let bystander: MqttClient;
  before(async () => {
    b = await startBroker({ allowAnonymous: true, maxPacketBytes: 1_024 });
    bystander = await b.client({ protocolVersion: 5, clientId: 'bystander' });
    await bystander.subscribeAsync('alive', { qos: 1 });
  });
  after(() => b.stop());
  afterEach(async () => {
    // Everyone else carries on.
    const got = collect(bystander, 1);
    await bystander.publishAsync('alive', 'still here', { qos: 1 });
    assert.equal((await got)[0]!.payload, 'still here');
  });

  /** A v5 connection: the broker answers DISCONNECT `code`, then closes. */
  async function expectDisconnect(raw: RawClient, code: number): Promise<void> {
    const d = (await raw.next((p) => p.cmd === 'disconnect')) as IDisconnectPacket;
    assert.equal(d.reasonCode, code, `DISCONNECT 0x${d.reasonCode?.toString(16)}: ${d.properties?.reasonString}`);
    assert.ok(await raw.closesWithin());
  }

  it('closes on a remaining length longer than four bytes (DISCONNECT 0x81)', async () => {
    const raw = await b.raw();
    await raw.handshake(5);
    raw.write([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
    await expectDisconnect(raw, 0x81);
  });

  it('closes on reserved fixed-header flags: SUBSCRIBE without 0010, PUBREL without 0010', async () => {
    const sub = await b.raw();
    await sub.handshake(4);
    sub.write([0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00]);
    assert.ok(await sub.closesWithin());
    const rel = await b.raw();
    await rel.handshake(5);
    rel.write([0x60, 0x02, 0x00, 0x01]);
    await expectDisconnect(rel, 0x81);
  });

  it('closes on SUBSCRIBE options with reserved bits set (0x81) or Retain Handling 3 (0x82)', async () => {
    const reserved = await b.raw();
    await reserved.handshake(5);
    reserved.write([0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61, 0xc0]);
    await expectDisconnect(reserved, 0x81);
    const rh3 = await b.raw();
    await rh3.handshake(5);
    rh3.write([0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61, 0x30]);
    await expectDisconnect(rh3, 0x82);
  });

  it('closes on a CONNECT whose reserved flag is set', async () => {
    const raw = await b.raw();
    raw.write([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x03, 0x00, 0x3c, 0x00, 0x01, 0x61]);
    assert.ok(await raw.closesWithin());
  });

  it('closes on a topic that is not well-formed UTF-8, or contains U+0000 (DISCONNECT 0x81)', async () => {
    const bad = await b.raw();
    await bad.handshake(5);
    bad.write(publishWithTopicBytes([0x61, 0xc3, 0x28], true));
    await expectDisconnect(bad, 0x81);
    const surrogate = await b.raw();
    await surrogate.handshake(4);
    surrogate.write(publishWithTopicBytes([0xed, 0xa0, 0x80], false)); // U+D800 encoded
    assert.ok(await surrogate.closesWithin());
    const nul = await b.raw();
    await nul.handshake(5);
    nul.write(publishWithTopicBytes([0x61, 0x00, 0x62], true));
    await expectDisconnect(nul, 0x81);
  });

  it('closes on a client id that is not UTF-8', async () => {
    const raw = await b.raw();
    raw.write([0x10, 0x0e, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, 0xff, 0xfe]);
    assert.ok(await raw.closesWithin());
  });

  it('closes on a wildcard in a PUBLISH topic (DISCONNECT 0x90 in v5)', async () => {
    const v5 = await b.raw();
    await v5.handshake(5);
    v5.send({ cmd: 'publish', topic: 'a/+/c', payload: Buffer.from('x'), qos: 0, dup: false, retain: false }, 5);
    await expectDisconnect(v5, 0x90);
    const v4 = await b.raw();
    await v4.handshake(4);
    v4.send({ cmd: 'publish', topic: 'a/#', payload: Buffer.from('x'), qos: 1, messageId: 1, dup: false, retain: false });
    assert.ok(await v4.closesWithin());
  });

  it('closes on a packet above the maximum size as soon as its header arrives (DISCONNECT 0x95)', async () => {
    const raw = await b.raw();
    const ack = await raw.handshake(5);
    assert.equal(ack.properties?.maximumPacketSize, 1_024);
    // A PUBLISH announcing 10 MB; only the header is sent.
    raw.write([0x30, 0x80, 0xad, 0xe2, 0x04]);
    await expectDisconnect(raw, 0x95);
  });

  it('closes a connection that sends anything before CONNECT, and routes none of it', async () => {
    const leaked: string[] = [];
    const onMessage = (_t: string, payload: Buffer): void => void leaked.push(payload.toString());
    bystander.on('message', onMessage);
    try {
      const early: Array<[string, Buffer | number[]]> = [
        ['PUBLISH', generate({ cmd: 'publish', topic: 'alive', payload: Buffer.from('before connect'), qos: 1, messageId: 1, dup: false, retain: false })],
        ['SUBSCRIBE', generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 0 }] })],
        ['PINGREQ', [0xc0, 0x00]],
        ['DISCONNECT', [0xe0, 0x00]],
      ];
      for (const [name, bytes] of early) {
        const raw = await b.raw();
        raw.write(bytes);
        assert.ok(await raw.closesWithin(), `${name} before CONNECT closes the connection`);
        assert.deepEqual(raw.packets, [], `nothing answers ${name} before CONNECT`);
      }
    } finally {
      bystander.off('message', onMessage);
    }
    assert.deepEqual(leaked, []);
  });

  it('closes a 3.1.1 connection that sends a packet above the maximum size', async () => {
    const raw = await b.raw();
    await raw.handshake(4);
    raw.write([0x30, 0x80, 0x10]); // remaining length 2,048 > 1,024
    assert.ok(await raw.closesWithin());
    assert.deepEqual(raw.packets, []);
  });

  it('closes a connection that sends CONNECT twice (DISCONNECT 0x82)', async () => {
    const raw = await b.raw();
    await raw.handshake(5, { clientId: 'twice' });
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'twice', clean: true, keepalive: 60 }, 5);
    await expectDisconnect(raw, 0x82);
  });

  it('survives a flood of CONNECTs: on one connection, and on 200 at once', async () => {
    const one = await b.raw();
    const connect = [0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x66];
    one.write(Array.from({ length: 500 }, () => connect).flat());
    assert.ok(await one.closesWithin());
    assert.equal(one.packets.filter((p) => p.cmd === 'connack').length, 1);
    const many = await Promise.all(Array.from({ length: 200 }, () => b.raw()));
    for (const [i, raw] of many.entries()) {
      const id = Buffer.from(`flood-${i}`);
      const c = [0x10, 10 + 2 + id.length, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, id.length, ...id];
      raw.write([...c, ...c, ...c]);
    }
    const closed = await Promise.all(many.map((r) => r.closesWithin(5_000)));
    assert.ok(closed.every(Boolean));
    assert.equal(b.broker.connections, 1, 'only the bystander is left');
  });

  it('closes on QoS 3, on DUP with QoS 0, and on packet id 0', async () => {
    const q3 = await b.raw();
    await q3.handshake(4);
    q3.write([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]);
    assert.ok(await q3.closesWithin());
    const dup = await b.raw();
    await dup.handshake(5);
    dup.write([0x38, 0x04, 0x00, 0x01, 0x61, 0x00]);
    await expectDisconnect(dup, 0x81);
    const zero = await b.raw();
    await zero.handshake(4);
    zero.write([0x32, 0x05, 0x00, 0x01, 0x61, 0x00, 0x00]);
    assert.ok(await zero.closesWithin());
  });

  it('closes on a packet only servers send (DISCONNECT 0x82)', async () => {
    const raw = await b.raw();
    await raw.handshake(5);
    raw.write([0x20, 0x03, 0x00, 0x00, 0x00]); // CONNACK
    await expectDisconnect(raw, 0x82);
  });

  it('closes on a property given twice (DISCONNECT 0x82)', async () => {
    const raw = await b.raw();
    await raw.handshake(5);
    // PUBLISH "a", properties: Message Expiry Interval twice.
    raw.write([0x30, 0x0e, 0x00, 0x01, 0x61, 0x0a, 0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x02]);
    await expectDisconnect(raw, 0x82);
  });

  it('survives random bytes, before and after CONNECT', async () => {
    for (let i = 0; i < 20; i++) {
      const raw = await b.raw();
      if (i % 2 === 1) await raw.handshake(4);
      raw.write(randomBytes(64 + i * 7));
      raw.socket.end();
      assert.ok(await raw.closesWithin());
    }
  });
});
