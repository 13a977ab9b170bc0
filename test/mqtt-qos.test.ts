import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parser, type IPublishPacket, type QoS } from 'mqtt-packet';
import { MemoryMqttPersistence } from '../src/mqtt/memory-persistence.js';
import { collect, mosquitto, sleep, startBroker, type TestBroker } from './mqtt-harness.js';

const isPublish = (p: { cmd: string }): boolean => p.cmd === 'publish';

describe('MQTT QoS 0, 1 and 2', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker({ allowAnonymous: true, maxInflightPerClient: 2 });
  });
  after(() => b.stop());

  it('delivers at the lower of the publish QoS and the subscription QoS', async () => {
    const subs = await Promise.all(([0, 1, 2] as QoS[]).map(async (qos) => {
      const c = await b.client({ protocolVersion: 5 });
      await c.subscribeAsync('matrix/t', { qos });
      return { qos, c };
    }));
    const pub = await b.client({ protocolVersion: 4 });
    const received = subs.map(({ c }) => collect(c, 3));
    for (const qos of [0, 1, 2] as QoS[]) await pub.publishAsync('matrix/t', `q${qos}`, { qos });
    for (const [i, got] of received.entries()) {
      const subQos = subs[i]!.qos;
      assert.deepEqual((await got).map((g) => [g.payload, g.packet.qos]), [0, 1, 2].map((q) => [`q${q}`, Math.min(q, subQos)]));
    }
  });

  it('sends one copy at the highest QoS when several subscriptions of a client match', async () => {
    const c = await b.client({ protocolVersion: 4 });
    await c.subscribeAsync({ 'overlap/+': { qos: 0 }, 'overlap/#': { qos: 2 }, 'overlap/x': { qos: 1 } });
    const got = collect(c, 1);
    const pub = await b.client();
    await pub.publishAsync('overlap/x', 'once', { qos: 2 });
    assert.equal((await got)[0]!.packet.qos, 2);
    await sleep(200);
    assert.equal(c.listenerCount('message'), 0);
  });

  it('keeps at most maxInflightPerClient unacknowledged messages in flight, and sends the next on PUBACK', async () => {
    const raw = await b.raw();
    await raw.handshake(4, { clientId: 'window' });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'window/t', qos: 1 }] });
    await raw.next((p) => p.cmd === 'suback');
    const pub = await b.client();
    for (let i = 0; i < 4; i++) await pub.publishAsync('window/t', `m${i}`, { qos: 1 });
    const first = (await raw.next(isPublish)) as IPublishPacket;
    const second = (await raw.next(isPublish)) as IPublishPacket;
    await assert.rejects(raw.next(isPublish, 300));
    raw.send({ cmd: 'puback', messageId: first.messageId! });
    const third = (await raw.next(isPublish)) as IPublishPacket;
    assert.deepEqual([first, second, third].map((p) => p.payload.toString()), ['m0', 'm1', 'm2']);
    assert.equal(b.broker.inflight >= 2, true);
  });

  it('redelivers an unacknowledged QoS 1 message with DUP and the same packet id on reconnect', async () => {
    const raw = await b.raw();
    await raw.handshake(4, { clientId: 'dup-me', clean: false });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'dup/t', qos: 1 }] });
    await raw.next((p) => p.cmd === 'suback');
    const pub = await b.client();
    await pub.publishAsync('dup/t', 'again', { qos: 1 });
    const first = (await raw.next(isPublish)) as IPublishPacket;
    assert.equal(first.dup, false);
    raw.socket.destroy();
    await raw.closed;
    const again = await b.raw();
    const ack = await again.handshake(4, { clientId: 'dup-me', clean: false });
    assert.equal(ack.sessionPresent, true);
    const redelivered = (await again.next(isPublish)) as IPublishPacket;
    assert.equal(redelivered.dup, true);
    assert.equal(redelivered.messageId, first.messageId);
    assert.equal(redelivered.payload.toString(), 'again');
    again.send({ cmd: 'puback', messageId: redelivered.messageId! });
  });

  it('delivers an incoming QoS 2 message exactly once, even when the publisher sends it twice before PUBREL', async () => {
    const sub = await b.client({ protocolVersion: 5 });
    await sub.subscribeAsync('exactly/once', { qos: 2 });
    const seen: string[] = [];
    sub.on('message', (_t, p) => seen.push(p.toString()));
    const raw = await b.raw();
    await raw.handshake(4);
    raw.send({ cmd: 'publish', topic: 'exactly/once', payload: Buffer.from('one'), qos: 2, messageId: 7, dup: false, retain: false });
    assert.equal((await raw.next()).cmd, 'pubrec');
    raw.send({ cmd: 'publish', topic: 'exactly/once', payload: Buffer.from('one'), qos: 2, messageId: 7, dup: true, retain: false });
    assert.equal((await raw.next()).cmd, 'pubrec');
    raw.send({ cmd: 'pubrel', messageId: 7 });
    assert.equal((await raw.next()).cmd, 'pubcomp');
    // Released: the same packet id is now a new message.
    raw.send({ cmd: 'publish', topic: 'exactly/once', payload: Buffer.from('two'), qos: 2, messageId: 7, dup: false, retain: false });
    assert.equal((await raw.next()).cmd, 'pubrec');
    raw.send({ cmd: 'pubrel', messageId: 7 });
    assert.equal((await raw.next()).cmd, 'pubcomp');
    await sleep(200);
    assert.deepEqual(seen, ['one', 'two']);
  });

  it('keeps incoming QoS 2 state across reconnects: a PUBLISH sent again after reconnecting is not delivered twice', async () => {
    const sub = await b.client({ protocolVersion: 5 });
    await sub.subscribeAsync('exactly/across', { qos: 2 });
    const seen: string[] = [];
    sub.on('message', (_t, p) => seen.push(p.toString()));
    const raw = await b.raw();
    await raw.handshake(4, { clientId: 'q2-in', clean: false });
    raw.send({ cmd: 'publish', topic: 'exactly/across', payload: Buffer.from('once'), qos: 2, messageId: 9, dup: false, retain: false });
    assert.equal((await raw.next()).cmd, 'pubrec');
    // The connection drops before PUBREL; the client resends the PUBLISH on its resumed session.
    raw.socket.destroy();
    await raw.closed;
    const again = await b.raw();
    assert.equal((await again.handshake(4, { clientId: 'q2-in', clean: false })).sessionPresent, true);
    again.send({ cmd: 'publish', topic: 'exactly/across', payload: Buffer.from('once'), qos: 2, messageId: 9, dup: true, retain: false });
    assert.equal((await again.next()).cmd, 'pubrec');
    again.send({ cmd: 'pubrel', messageId: 9 });
    assert.equal((await again.next()).cmd, 'pubcomp');
    await sleep(200);
    assert.deepEqual(seen, ['once']);
  });

  it('keeps outgoing QoS 2 state across reconnects: PUBREL is sent again, not the PUBLISH', async () => {
    const raw = await b.raw();
    await raw.handshake(4, { clientId: 'q2-out', clean: false });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q2/out', qos: 2 }] });
    await raw.next((p) => p.cmd === 'suback');
    const pub = await b.client();
    await pub.publishAsync('q2/out', 'x', { qos: 2 });
    const p = (await raw.next(isPublish)) as IPublishPacket;
    raw.send({ cmd: 'pubrec', messageId: p.messageId! });
    assert.equal((await raw.next()).cmd, 'pubrel');
    raw.socket.destroy();
    await raw.closed;
    const again = await b.raw();
    await again.handshake(4, { clientId: 'q2-out', clean: false });
    const rel = await again.next();
    assert.equal(rel.cmd, 'pubrel');
    assert.equal((rel as { messageId?: number }).messageId, p.messageId);
    const before = b.broker.inflight;
    again.send({ cmd: 'pubcomp', messageId: p.messageId! });
    await sleep(100);
    assert.equal(b.broker.inflight, before - 1);
    await assert.rejects(again.next(isPublish, 200));
  });

  it('queues QoS 1 and 2 messages for an offline persistent session and delivers them in order on reconnect', async () => {
    const c = await b.client({ protocolVersion: 5, clientId: 'offline-q', clean: false, properties: { sessionExpiryInterval: 300 } });
    await c.subscribeAsync('offline/t', { qos: 2 });
    await c.endAsync();
    const pub = await b.client();
    await pub.publishAsync('offline/t', 'lost (QoS 0)', { qos: 0 });
    for (let i = 1; i <= 5; i++) await pub.publishAsync('offline/t', `m${i}`, { qos: (1 + (i % 2)) as QoS });
    const back = b.unconnected({ protocolVersion: 5, clientId: 'offline-q', clean: false, properties: { sessionExpiryInterval: 300 } });
    const got = collect(back, 5);
    back.connect();
    const messages = await got;
    // mqtt.js emits a QoS 2 message only at PUBREL, so compare the order within each QoS.
    for (const qos of [1, 2]) {
      assert.deepEqual(messages.filter((g) => g.packet.qos === qos).map((g) => g.payload), ['m1', 'm2', 'm3', 'm4', 'm5'].filter((_, i) => 1 + ((i + 1) % 2) === qos));
    }
  });

  it('works with mosquitto_pub at QoS 1 and mosquitto_sub at QoS 2', async () => {
    const sub = mosquitto('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', 'mqttv5', '-t', 'mosq/qos', '-q', '2', '-C', '1']);
    try {
      await sleep(300);
      const watcher = await b.client();
      await watcher.subscribeAsync('mosq/qos', { qos: 2 });
      const got = collect(watcher, 1);
      const pub = mosquitto('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', 'mqttv311', '-t', 'mosq/qos', '-q', '1', '-m', 'via mosquitto']);
      assert.equal(await pub.exited, 0);
      assert.equal((await got)[0]!.packet.qos, 1);
      assert.deepEqual(await sub.waitForLines(1), ['via mosquitto']);
    } finally {
      sub.kill();
    }
  });
});

describe('MQTT packet identifiers', () => {
  it('uses packet ids 1 to 65,535 in turn, then wraps around past one still in flight', async () => {
    const b = await startBroker({ allowAnonymous: true, maxInflightPerClient: 2 });
    try {
      const raw = await b.raw();
      await raw.handshake(4, { clientId: 'ids' });
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'ids/t', qos: 1 }] });
      await raw.next((p) => p.cmd === 'suback');
      const total = 65_537;
      const ids: number[] = [];
      const payload = Buffer.from('x');
      // Lock step: each PUBLISH is acknowledged (except the first, left in flight) and the next published.
      const done = new Promise<void>((resolve) => {
        const p = parser({ protocolVersion: 4 });
        p.on('packet', (packet) => {
          if (packet.cmd !== 'publish') return;
          ids.push(packet.messageId!);
          if (ids.length > 1) raw.write([0x40, 0x02, packet.messageId! >> 8, packet.messageId! & 0xff]);
          if (ids.length === total) resolve();
          else void b.broker.publish({ topic: 'ids/t', payload, qos: 1 });
        });
        raw.socket.on('data', (d: Buffer) => p.parse(d));
      });
      void b.broker.publish({ topic: 'ids/t', payload, qos: 1 });
      await done;
      assert.ok(
        ids.slice(0, 65_535).every((id, i) => id === i + 1),
        'ids 1..65,535 in order',
      );
      // [MQTT-2.2.1-3] 5.0 / [MQTT-2.3.1-2] 3.1.1: never 0, never one in use: 1 is still unacknowledged.
      assert.deepEqual(ids.slice(65_535), [2, 3]);
    } finally {
      await b.stop();
    }
  });
});

describe('MQTT offline queues: limits and drop policies', () => {
  for (const [policy, expected] of [['drop-oldest', ['m3', 'm4', 'm5']], ['drop-new', ['m1', 'm2', 'm3']]] as const) {
    it(`keeps maxQueuedPerClient messages for an offline client, with ${policy}`, async () => {
      const b = await startBroker({ allowAnonymous: true, maxQueuedPerClient: 3, dropPolicy: policy });
      try {
        const c = await b.client({ protocolVersion: 4, clientId: 'bounded', clean: false });
        await c.subscribeAsync('bounded/t', { qos: 1 });
        await c.endAsync();
        const pub = await b.client();
        for (let i = 1; i <= 5; i++) await pub.publishAsync('bounded/t', `m${i}`, { qos: 1 });
        assert.equal(b.broker.queued, 3);
        assert.equal(b.broker.stats.dropped, 2);
        const back = b.unconnected({ protocolVersion: 4, clientId: 'bounded', clean: false });
        const got = collect(back, 3);
        back.connect();
        assert.deepEqual((await got).map((g) => g.payload), expected);
      } finally {
        await b.stop();
      }
    });
  }
});

describe('MQTT QoS 2 to a persistent session', () => {
  it('sends PUBREL only once the store knows the message is released (so a node resuming the session after a kill -9 sends PUBREL again, never the PUBLISH)', async () => {
    // The store's "released" writes wait for the test to let them through.
    const store = new MemoryMqttPersistence();
    const held: Array<() => void> = [];
    const updateQueued = store.updateQueued.bind(store);
    store.updateQueued = async (clientId, seq, change) => {
      if (change.released === true) await new Promise<void>((r) => held.push(r));
      return updateQueued(clientId, seq, change);
    };
    const b = await startBroker({ allowAnonymous: true, persistence: store });
    try {
      const raw = await b.raw();
      await raw.handshake(5, { clientId: 'q2-rel', clean: false, properties: { sessionExpiryInterval: 300 } });
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q2/rel', qos: 2 }] }, 5);
      await raw.next((p) => p.cmd === 'suback');
      const pub = await b.client({ protocolVersion: 5 });
      await pub.publishAsync('q2/rel', 'once', { qos: 2 });
      const p = (await raw.next(isPublish)) as IPublishPacket;
      raw.send({ cmd: 'pubrec', messageId: p.messageId! }, 5);
      // No PUBREL while the store does not know.
      await assert.rejects(raw.next((x) => x.cmd === 'pubrel', 300));
      assert.equal(held.length, 1);
      held[0]!();
      const rel = await raw.next((x) => x.cmd === 'pubrel');
      assert.equal((rel as { messageId?: number }).messageId, p.messageId);
      const [stored] = await store.queued('q2-rel', 10);
      assert.deepEqual([stored?.released, stored?.packetId], [true, p.messageId]);
    } finally {
      await b.stop();
    }
  });
});
