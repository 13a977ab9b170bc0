import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IDisconnectPacket, IPublishPacket, ISubackPacket } from 'mqtt-packet';
import { collect, sleep, startBroker, type TestBroker } from './mqtt-harness.js';

const isPublish = (p: { cmd: string }): boolean => p.cmd === 'publish';

describe('MQTT 5 subscription options and identifiers', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker({ allowAnonymous: true });
  });
  after(() => b.stop());

  it('sends one PUBLISH carrying the identifiers of every matching subscription', async () => {
    const c = await b.client({ protocolVersion: 5 });
    await c.subscribeAsync('si/+', { qos: 1, properties: { subscriptionIdentifier: 7 } });
    await c.subscribeAsync('si/#', { qos: 0, properties: { subscriptionIdentifier: 300 } });
    await c.subscribeAsync('si/x/#', { qos: 0 });
    const got = collect(c, 1);
    const pub = await b.client();
    await pub.publishAsync('si/x', 'ids', { qos: 1 });
    const ids = (await got)[0]!.packet.properties?.subscriptionIdentifier;
    assert.deepEqual([ids].flat().sort((x, y) => Number(x) - Number(y)), [7, 300]);
    await sleep(150);
    assert.equal(c.listenerCount('message'), 0, 'a single copy');
  });

  it('does not send a client its own messages on a No Local subscription', async () => {
    const c = await b.client({ protocolVersion: 5, clientId: 'nl-self' });
    await c.subscribeAsync('nl/t', { qos: 0, nl: true });
    const seen: string[] = [];
    c.on('message', (_t, p) => seen.push(p.toString()));
    await c.publishAsync('nl/t', 'mine', { qos: 1 });
    const other = await b.client();
    await other.publishAsync('nl/t', 'theirs', { qos: 1 });
    await sleep(200);
    assert.deepEqual(seen, ['theirs']);
  });

  it('keeps RETAIN on forwarded messages only with Retain As Published', async () => {
    const rap = await b.client({ protocolVersion: 5 });
    await rap.subscribeAsync('rap/t', { qos: 0, rap: true });
    const plain = await b.client({ protocolVersion: 5 });
    await plain.subscribeAsync('rap/t', { qos: 0 });
    const a = collect(rap, 1);
    const p = collect(plain, 1);
    const pub = await b.client();
    await pub.publishAsync('rap/t', 'r', { qos: 1, retain: true });
    assert.equal((await a)[0]!.packet.retain, true);
    assert.equal((await p)[0]!.packet.retain, false);
  });

  it('sends retained messages per Retain Handling: 0 always, 1 for a new subscription only, 2 never', async () => {
    await b.broker.publish({ topic: 'rh/t', payload: 'kept', retain: true });
    const raw = await b.raw();
    await raw.handshake(5);
    const subscribe = (id: number, rh: number): void => raw.send({ cmd: 'subscribe', messageId: id, subscriptions: [{ topic: 'rh/t', qos: 0, rh, nl: false, rap: false }] }, 5);
    subscribe(1, 2);
    await raw.next((x) => x.cmd === 'suback');
    await assert.rejects(raw.next(isPublish, 200), 'rh 2: none');
    raw.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['rh/t'] }, 5);
    await raw.next();
    subscribe(3, 1);
    assert.equal(((await raw.next(isPublish)) as IPublishPacket).payload.toString(), 'kept');
    subscribe(4, 1);
    await raw.next((x) => x.cmd === 'suback');
    await assert.rejects(raw.next(isPublish, 200), 'rh 1 on an existing subscription: none');
    subscribe(5, 0);
    assert.equal(((await raw.next(isPublish)) as IPublishPacket).retain, true);
  });

  it('refuses Subscription Identifier 0 and a PUBLISH from a client that carries one (0x82)', async () => {
    const raw = await b.raw();
    await raw.handshake(5);
    // SUBSCRIBE id 1, properties: Subscription Identifier 0, filter "a" QoS 0.
    raw.write([0x82, 0x09, 0x00, 0x01, 0x02, 0x0b, 0x00, 0x00, 0x01, 0x61, 0x00]);
    assert.equal(((await raw.next((x) => x.cmd === 'disconnect')) as IDisconnectPacket).reasonCode, 0x82);
    const pub = await b.raw();
    await pub.handshake(5);
    pub.send({ cmd: 'publish', topic: 'a', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, properties: { subscriptionIdentifier: 5 } }, 5);
    assert.equal(((await pub.next((x) => x.cmd === 'disconnect')) as IDisconnectPacket).reasonCode, 0x82);
  });
});

describe('MQTT shared subscriptions', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker({ allowAnonymous: true });
  });
  after(() => b.stop());

  it('spreads messages over the members of a group, round-robin, in 5.0 and 3.1.1', async () => {
    const members = await Promise.all([5, 5, 4].map((v) => b.client({ protocolVersion: v as 4 | 5 })));
    for (const m of members) await m.subscribeAsync('$share/workers/jobs/+', { qos: 1 });
    const everyone = await b.client();
    await everyone.subscribeAsync('jobs/#', { qos: 1 });
    const all = collect(everyone, 9);
    const counts = members.map(() => 0);
    members.forEach((m, i) => m.on('message', () => counts[i]!++));
    const pub = await b.client();
    for (let i = 0; i < 9; i++) await pub.publishAsync(`jobs/${i}`, String(i), { qos: 1 });
    assert.equal((await all).length, 9, 'an ordinary subscription still gets every message');
    await sleep(200);
    assert.deepEqual(counts, [3, 3, 3]);
  });

  it('hands a message a leaving member did not acknowledge to another member', async () => {
    const raw = await b.raw();
    await raw.handshake(5, { clientId: 'leaver' });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g2/tasks', qos: 1, nl: false, rap: false, rh: 0 }] }, 5);
    await raw.next();
    const pub = await b.client();
    await pub.publishAsync('tasks', 'important', { qos: 1 });
    const p = (await raw.next(isPublish)) as IPublishPacket;
    assert.equal(p.payload.toString(), 'important');
    const stayer = await b.client({ protocolVersion: 5 });
    await stayer.subscribeAsync('$share/g2/tasks', { qos: 1 });
    const got = collect(stayer, 1);
    raw.socket.destroy();
    assert.equal((await got)[0]!.payload, 'important');
  });

  it('does not send retained messages to a new shared subscription, and refuses No Local on one', async () => {
    await b.broker.publish({ topic: 'shared/ret', payload: 'r', retain: true });
    const raw = await b.raw();
    await raw.handshake(5);
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g3/shared/ret', qos: 0, nl: false, rap: false, rh: 0 }] }, 5);
    assert.deepEqual(((await raw.next()) as ISubackPacket).granted, [0]);
    await assert.rejects(raw.next(isPublish, 200));
    raw.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: '$share/g3/x', qos: 0, nl: true, rap: false, rh: 0 }] }, 5);
    assert.equal(((await raw.next((x) => x.cmd === 'disconnect')) as IDisconnectPacket).reasonCode, 0x82);
  });

  it('answers 0x9E when shared subscriptions are turned off', async () => {
    const off = await startBroker({ allowAnonymous: true, sharedSubscriptionAvailable: false });
    try {
      const raw = await off.raw();
      const ack = await raw.handshake(5);
      assert.equal(ack.properties?.sharedSubscriptionAvailable, false);
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/t', qos: 0, nl: false, rap: false, rh: 0 }] }, 5);
      assert.deepEqual(((await raw.next()) as ISubackPacket).granted, [0x9e]);
    } finally {
      await off.stop();
    }
  });
});
