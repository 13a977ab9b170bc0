import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ISubackPacket, IUnsubackPacket } from 'mqtt-packet';
import { collect, mosquitto, sleep, startBroker, type TestBroker } from './mqtt-harness.js';

describe('MQTT SUBSCRIBE, UNSUBSCRIBE and retained messages', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker({ allowAnonymous: true }, { authorizeSubscribe: (_principal, filter) => !filter.startsWith('secret/') });
  });
  after(() => b.stop());

  it('answers each filter in SUBACK: granted QoS, 0x8F for an invalid filter, 0x87 when refused (v5)', async () => {
    const raw = await b.raw();
    await raw.handshake(5);
    raw.send({
      cmd: 'subscribe',
      messageId: 3,
      subscriptions: [
        { topic: 'ok/+', qos: 2 },
        { topic: 'bad/#/more', qos: 1 },
        { topic: 'secret/x', qos: 1 },
        { topic: 'sport/tennis+', qos: 0 },
        { topic: '$share//x', qos: 0 },
        { topic: 'ok/one', qos: 1 },
      ],
    }, 5);
    const ack = (await raw.next()) as ISubackPacket;
    assert.equal(ack.messageId, 3);
    assert.deepEqual(ack.granted, [2, 0x8f, 0x87, 0x8f, 0x8f, 1]);
  });

  it('answers refused and invalid filters with 0x80 in 3.1.1', async () => {
    const raw = await b.raw();
    await raw.handshake(4);
    raw.send({ cmd: 'subscribe', messageId: 4, subscriptions: [{ topic: 'a/b#', qos: 1 }, { topic: 'secret/y', qos: 1 }, { topic: 'a/b', qos: 1 }] });
    const ack = (await raw.next()) as ISubackPacket;
    assert.deepEqual(ack.granted, [0x80, 0x80, 1]);
  });

  it('refuses subscriptions beyond maxSubscriptionsPerClient (0x97 in v5, 0x80 in 3.1.1) and still replaces existing ones', async () => {
    const small = await startBroker({ allowAnonymous: true, maxSubscriptionsPerClient: 2 });
    try {
      const v5 = await small.raw();
      await v5.handshake(5);
      v5.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q/1', qos: 0 }, { topic: 'q/2', qos: 0 }, { topic: 'q/3', qos: 0 }] }, 5);
      assert.deepEqual(((await v5.next()) as ISubackPacket).granted, [0, 0, 0x97]);
      v5.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'q/2', qos: 1 }] }, 5);
      assert.deepEqual(((await v5.next()) as ISubackPacket).granted, [1]);
      const v4 = await small.raw();
      await v4.handshake(4);
      v4.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q/1', qos: 1 }, { topic: 'q/2', qos: 1 }, { topic: 'q/3', qos: 1 }] });
      assert.deepEqual(((await v4.next()) as ISubackPacket).granted, [1, 1, 0x80]);
      assert.equal(small.broker.subscriptions, 4);
    } finally {
      await small.stop();
    }
  });

  it('stops delivering after UNSUBSCRIBE, with 0x11 for a filter that was not subscribed (v5)', async () => {
    const raw = await b.raw();
    await raw.handshake(5);
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'unsub/t', qos: 0 }] }, 5);
    await raw.next();
    raw.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['unsub/t', 'never/subscribed'] }, 5);
    const ack = (await raw.next()) as IUnsubackPacket;
    assert.deepEqual(ack.granted, [0x00, 0x11]);
    const pub = await b.client();
    await pub.publishAsync('unsub/t', 'gone', { qos: 1 });
    await assert.rejects(raw.next((p) => p.cmd === 'publish', 300));
  });

  it('replaces a subscription to the same filter instead of adding a second one', async () => {
    const c = await b.client({ protocolVersion: 4 });
    await c.subscribeAsync('replace/t', { qos: 0 });
    await c.subscribeAsync('replace/t', { qos: 2 });
    const got = collect(c, 1);
    const pub = await b.client();
    await pub.publishAsync('replace/t', 'x', { qos: 2 });
    assert.equal((await got)[0]!.packet.qos, 2);
    await sleep(200);
    assert.equal(c.listenerCount('message'), 0, 'one copy only');
  });

  it('sends the retained message to a new subscriber with RETAIN set, and clears it on an empty payload', async () => {
    const pub = await b.client({ protocolVersion: 5 });
    await pub.publishAsync('ret/a', 'first', { qos: 1, retain: true });
    await pub.publishAsync('ret/a', 'latest', { qos: 1, retain: true });
    await pub.publishAsync('ret/b/c', 'deep', { qos: 0, retain: true });
    const c = await b.client({ protocolVersion: 4 });
    const got = collect(c, 2);
    await c.subscribeAsync('ret/#', { qos: 1 });
    const msgs = (await got).map((g) => [g.topic, g.payload, g.packet.retain, g.packet.qos]).sort();
    assert.deepEqual(msgs, [['ret/a', 'latest', true, 1], ['ret/b/c', 'deep', true, 0]]);
    const before = b.broker.retainedCount;
    // Live messages to an existing subscription go out with RETAIN 0 ([MQTT-3.3.1-9] 3.1.1).
    const live = collect(c, 1);
    await pub.publishAsync('ret/a', Buffer.alloc(0), { qos: 1, retain: true });
    const [cleared] = await live;
    assert.equal(cleared!.packet.retain, false);
    assert.equal(b.broker.retainedCount, before - 1);
    const d = await b.client();
    const only = collect(d, 1);
    await d.subscribeAsync('ret/+', { qos: 0 });
    await d.subscribeAsync('ret/b/+', { qos: 0 });
    assert.equal((await only)[0]!.topic, 'ret/b/c');
  });

  it('does not match $SYS topics with a filter starting with a wildcard', async () => {
    const c = await b.client();
    await c.subscribeAsync('#', { qos: 0 });
    await c.subscribeAsync('+/uptime', { qos: 0 });
    const sys = await b.client();
    await sys.subscribeAsync('$SYS/#', { qos: 0 });
    const got = collect(sys, 1);
    const all: string[] = [];
    c.on('message', (t) => all.push(t));
    await b.broker.publish({ topic: '$SYS/uptime', payload: '42' });
    assert.equal((await got)[0]!.payload, '42');
    await sleep(100);
    assert.deepEqual(all.filter((t) => t.startsWith('$')), []);
  });

  it('refuses a client PUBLISH to $SYS/ (0x87 in v5)', async () => {
    const c = await b.client({ protocolVersion: 5 });
    await assert.rejects(c.publishAsync('$SYS/fake', 'x', { qos: 1 }), (e: { code?: number }) => e.code === 0x87);
  });

  it('serves retained messages to mosquitto_sub', async () => {
    await b.broker.publish({ topic: 'mosq/retained', payload: 'from the server', retain: true, qos: 1 });
    const sub = mosquitto('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', 'mqttv311', '-t', 'mosq/retained', '-C', '1', '--retained-only']);
    try {
      assert.deepEqual(await sub.waitForLines(1), ['from the server']);
    } finally {
      sub.kill();
    }
  });
});
