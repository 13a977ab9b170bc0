import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { generate, parser, type IPublishPacket, type Packet } from 'mqtt-packet';
import { encode, PacketDecoder } from '../src/mqtt/codec.js';
import type { Message } from '../src/mqtt/message.js';
import { encodePublish } from '../src/mqtt/publish-encoder.js';

const connect = (version: 4 | 5): Buffer => generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: 'codec', clean: true, keepalive: 30 }, { protocolVersion: version });
const publish = (topic: string, payload: string, version: 4 | 5 = 4): Buffer => generate({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, messageId: 9, dup: false, retain: false }, { protocolVersion: version });

/** What the decoder makes of `bytes`: the packets it completed, and the error that stopped it. */
function decode(d: PacketDecoder, bytes: Buffer): { packets: Packet[]; error: ReturnType<PacketDecoder['push']> } {
  const packets: Packet[] = [];
  const error = d.push(bytes, packets);
  return { packets, error };
}

function parseAs(version: 4 | 5, bytes: Buffer): Packet[] {
  const out: Packet[] = [];
  const p = parser({ protocolVersion: version });
  p.on('packet', (x) => out.push(x));
  p.on('error', (e) => assert.fail(e));
  p.parse(bytes);
  return out;
}

describe('MQTT codec', () => {
  it('decodes packets split at every byte, and several packets in one chunk', () => {
    const stream = Buffer.concat([connect(5), publish('a/b', 'one', 5), publish('c', 'two', 5), Buffer.from([0xc0, 0x00])]);
    const split = new PacketDecoder(1 << 20);
    const bytewise: Packet[] = [];
    for (const byte of stream) {
      const r = decode(split, Buffer.from([byte]));
      assert.equal(r.error, null);
      bytewise.push(...r.packets);
    }
    const whole = decode(new PacketDecoder(1 << 20), stream);
    assert.equal(whole.error, null);
    for (const packets of [bytewise, whole.packets]) {
      assert.deepEqual(packets.map((p) => p.cmd), ['connect', 'publish', 'publish', 'pingreq']);
      assert.deepEqual(packets.filter((p): p is IPublishPacket => p.cmd === 'publish').map((p) => [p.topic, p.payload.toString()]), [['a/b', 'one'], ['c', 'two']]);
    }
  });

  it('refuses a packet over the maximum size from its fixed header alone', () => {
    const d = new PacketDecoder(100);
    decode(d, connect(4));
    const r = decode(d, Buffer.from([0x30, 0xe8, 0x07])); // remaining length 1000, no body
    assert.equal(r.error?.reasonCode, 0x95);
  });

  it('keeps decoding other connections after one sends a malformed packet', () => {
    const bad = new PacketDecoder(1 << 20);
    assert.equal(decode(bad, Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x09, 0x02, 0x00, 0x3c, 0x00, 0x00])).error?.reasonCode, 0x84);
    const half = new PacketDecoder(1 << 20);
    decode(half, connect(4));
    assert.equal(decode(half, Buffer.from([0x30, 0x03, 0x00, 0x09, 0x61])).error?.reasonCode, 0x81); // topic longer than the packet
    const good = new PacketDecoder(1 << 20);
    const r = decode(good, Buffer.concat([connect(4), publish('x', 'fine')]));
    assert.equal(r.error, null);
    assert.deepEqual(r.packets.map((p) => p.cmd), ['connect', 'publish']);
  });

  it('gives a small payload its own buffer rather than a view of the whole read', () => {
    const d = new PacketDecoder(1 << 20);
    // One 60 KB read: CONNECT, a PUBLISH with 5 bytes of payload, then 15,000 PINGREQs.
    const pings = Buffer.from(Array.from({ length: 30_000 }, (_, i) => (i % 2 === 0 ? 0xc0 : 0x00)));
    const big = Buffer.concat([connect(4), publish('t', 'small'), pings]);
    const r = decode(d, big);
    const p = r.packets.find((x): x is IPublishPacket => x.cmd === 'publish')!;
    assert.equal(p.payload.toString(), 'small');
    assert.ok((p.payload as Buffer).buffer.byteLength < 10_000);
  });

  it('encodes PUBLISH as mqtt-packet parses it, with every MQTT 5 property', () => {
    const m: Message = {
      topic: 'devices/é/x',
      payload: Buffer.from('payload'),
      qos: 2,
      retain: true,
      properties: { payloadFormatIndicator: true, contentType: 'text/plain', responseTopic: 'r/t', correlationData: Buffer.from('c'), userProperties: { a: '1', b: ['2', '3'] } },
      expiresAt: undefined,
      senderId: undefined,
    };
    const v5 = encodePublish(m, { qos: 1, retain: true, dup: true, packetId: 300, topicAlias: 2, omitTopic: false, subscriptionIds: [1, 268_435_455], expiryS: 60 }, 5);
    const [p5] = parseAs(5, v5) as IPublishPacket[];
    assert.deepEqual([p5!.topic, p5!.payload.toString(), p5!.qos, p5!.retain, p5!.dup, p5!.messageId], ['devices/é/x', 'payload', 1, true, true, 300]);
    const props = p5!.properties!;
    assert.deepEqual([props.topicAlias, props.messageExpiryInterval, props.subscriptionIdentifier, props.contentType, props.responseTopic], [2, 60, [1, 268_435_455], 'text/plain', 'r/t']);
    assert.deepEqual({ ...props.userProperties }, { a: '1', b: ['2', '3'] });
    const aliased = encodePublish(m, { qos: 0, retain: false, dup: false, packetId: 0, topicAlias: 2, omitTopic: true, subscriptionIds: undefined, expiryS: undefined }, 5);
    assert.equal((parseAs(5, aliased)[0] as IPublishPacket).topic, '');
    const v4 = encodePublish(m, { qos: 0, retain: false, dup: false, packetId: 0, topicAlias: 0, omitTopic: false, subscriptionIds: undefined, expiryS: undefined }, 4);
    const [p4] = parseAs(4, v4) as IPublishPacket[];
    assert.deepEqual([p4!.topic, p4!.payload.toString(), p4!.properties], ['devices/é/x', 'payload', undefined]);
  });

  it('decodes PUBLISH, acknowledgements and PINGREQ on its fast path exactly as mqtt-packet does', () => {
    // The fields the handlers read, for every shape the fast path takes and several it leaves to mqtt-packet.
    const fields = (p: Packet): unknown => {
      const x = p as Packet & { topic?: string; payload?: Buffer; qos?: number; dup?: boolean; retain?: boolean; messageId?: number; reasonCode?: number; properties?: object };
      return { cmd: x.cmd, topic: x.topic ?? null, payload: x.payload?.toString('hex') ?? null, qos: x.qos ?? 0, dup: x.dup ?? false, retain: x.retain ?? false, messageId: x.messageId, reasonCode: x.reasonCode, properties: x.properties };
    };
    const cases: Array<[4 | 5, Packet]> = [];
    for (const version of [4, 5] as const) {
      for (const qos of [0, 1, 2] as const) {
        cases.push([version, { cmd: 'publish', topic: 'bench/fanin/7', payload: Buffer.alloc(64, 1), qos, messageId: qos > 0 ? 65_535 : undefined, dup: qos > 0, retain: qos === 1 }]);
      }
      cases.push([version, { cmd: 'publish', topic: 'maison/é/温度', payload: Buffer.from(''), qos: 0, dup: false, retain: false }]);
      cases.push([version, { cmd: 'publish', topic: 't', payload: Buffer.alloc(300, 2), qos: 1, messageId: 1, dup: false, retain: false }]);
      for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const) cases.push([version, { cmd, messageId: 4242 }]);
      cases.push([version, { cmd: 'pingreq' }]);
    }
    cases.push([5, { cmd: 'publish', topic: 'p', payload: Buffer.from('x'), qos: 1, messageId: 3, dup: false, retain: false, properties: { contentType: 'text/plain', userProperties: { a: 'b' } } }]);
    cases.push([5, { cmd: 'puback', messageId: 5, reasonCode: 0x10 }]);
    for (const [version, packet] of cases) {
      const bytes = generate(packet, { protocolVersion: version });
      const d = new PacketDecoder(1 << 20);
      const r = decode(d, Buffer.concat([connect(version), bytes]));
      assert.equal(r.error, null);
      assert.deepEqual(fields(r.packets[1]!), fields(parseAs(version, bytes)[0]!), `${packet.cmd} v${version}`);
    }
  });

  it('reports a broken PUBLISH the same way with or without its fast path', () => {
    const d = new PacketDecoder(1 << 20);
    decode(d, connect(4));
    // Topic with U+0000, then topic that is not UTF-8: both Malformed (0x81).
    assert.equal(decode(d, Buffer.from([0x30, 0x04, 0x00, 0x02, 0x61, 0x00])).error?.reasonCode, 0x81);
    const e = new PacketDecoder(1 << 20);
    decode(e, connect(4));
    assert.equal(decode(e, Buffer.from([0x30, 0x04, 0x00, 0x02, 0xc3, 0x28])).error?.reasonCode, 0x81);
    const q3 = new PacketDecoder(1 << 20);
    decode(q3, connect(4));
    assert.equal(decode(q3, Buffer.from([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01])).error?.reasonCode, 0x81); // QoS 3
  });

  it('encodes acknowledgements in four bytes when nothing more is needed', () => {
    assert.deepEqual([...encode({ cmd: 'puback', messageId: 258 }, 4)], [0x40, 0x02, 0x01, 0x02]);
    assert.deepEqual([...encode({ cmd: 'pubrel', messageId: 1, reasonCode: 0 }, 5)], [0x62, 0x02, 0x00, 0x01]);
    assert.deepEqual([...encode({ cmd: 'pubrec', messageId: 1, reasonCode: 0x10 }, 5)], [0x50, 0x04, 0x00, 0x01, 0x10, 0x00]);
  });
  it('holds a packet trickled one byte per read in about its size, not a Buffer per byte', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const used = (): number => {
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const d = new PacketDecoder(1 << 20);
    assert.equal(decode(d, connect(4)).error, null);
    assert.equal(decode(d, Buffer.from([0x30, 0xff, 0xff, 0x3e])).error, null); // a PUBLISH of ~1 MB, to come
    const before = used();
    for (let i = 0; i < 100_000; i++) assert.equal(decode(d, Buffer.from([0x61])).error, null);
    const grown = used() - before;
    assert.equal(d.pending, 100_004);
    // One Buffer per read held ~14 MB here.
    assert.ok(grown < 1_000_000, `grew ${grown} bytes holding 100,000`);
  });
});
