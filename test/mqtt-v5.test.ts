import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IAuthPacket, IConnackPacket, IDisconnectPacket, IPubackPacket, IPublishPacket } from 'mqtt-packet';
import { collect, sleep, startBroker, type TestBroker } from './mqtt-harness.js';

const isPublish = (p: { cmd: string }): boolean => p.cmd === 'publish';

describe('MQTT 5: properties, expiry, flow control, topic aliases', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker({ allowAnonymous: true, receiveMaximum: 2, topicAliasMaximum: 4 });
  });
  after(() => b.stop());

  it('passes user properties, content type, payload format and request/response properties through', async () => {
    const responder = await b.client({ protocolVersion: 5 });
    await responder.subscribeAsync('svc/request', { qos: 1 });
    responder.on('message', (_t, payload, packet) => {
      const p = packet.properties!;
      void responder.publishAsync(p.responseTopic!, `echo ${payload.toString()}`, { qos: 1, properties: { correlationData: p.correlationData!, userProperties: { handledBy: 'responder' } } });
    });
    const requester = await b.client({ protocolVersion: 5 });
    await requester.subscribeAsync('svc/reply/me', { qos: 1 });
    const reply = collect(requester, 1);
    await requester.publishAsync('svc/request', 'ping', {
      qos: 1,
      properties: { responseTopic: 'svc/reply/me', correlationData: Buffer.from('req-1'), contentType: 'text/plain', payloadFormatIndicator: true, userProperties: { a: '1', b: ['x', 'y'] } },
    });
    const [r] = await reply;
    assert.equal(r!.payload, 'echo ping');
    assert.equal(r!.packet.properties?.correlationData?.toString(), 'req-1');
    assert.deepEqual({ ...r!.packet.properties?.userProperties }, { handledBy: 'responder' });
    const watcher = await b.client({ protocolVersion: 5 });
    await watcher.subscribeAsync('props/t', { qos: 0 });
    const seen = collect(watcher, 1);
    await requester.publishAsync('props/t', 'x', { qos: 0, properties: { contentType: 'text/plain', payloadFormatIndicator: true, userProperties: { a: '1', b: ['x', 'y'] } } });
    const p = (await seen)[0]!.packet.properties!;
    assert.deepEqual([p.contentType, p.payloadFormatIndicator, { ...p.userProperties }], ['text/plain', true, { a: '1', b: ['x', 'y'] }]);
  });

  it('answers PUBACK 0x10 when nobody is subscribed and 0x99 for a payload marked UTF-8 that is not', async () => {
    const raw = await b.raw();
    await raw.handshake(5);
    raw.send({ cmd: 'publish', topic: 'nobody/here', payload: Buffer.from('x'), qos: 1, messageId: 1, dup: false, retain: false }, 5);
    assert.equal(((await raw.next()) as IPubackPacket).reasonCode, 0x10);
    raw.send({ cmd: 'publish', topic: 'nobody/here', payload: Buffer.from([0xff, 0xfe]), qos: 1, messageId: 2, dup: false, retain: false, properties: { payloadFormatIndicator: true } }, 5);
    assert.equal(((await raw.next()) as IPubackPacket).reasonCode, 0x99);
  });

  it('drops a queued message once its Message Expiry Interval has passed, and sends the time left otherwise', async () => {
    const c = await b.client({ protocolVersion: 5, clientId: 'expiry', clean: false, properties: { sessionExpiryInterval: 60 } });
    await c.subscribeAsync('expiry/t', { qos: 1 });
    await c.endAsync();
    const pub = await b.client({ protocolVersion: 5 });
    await pub.publishAsync('expiry/t', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
    await pub.publishAsync('expiry/t', 'long', { qos: 1, properties: { messageExpiryInterval: 60 } });
    await sleep(2_100);
    const back = b.unconnected({ protocolVersion: 5, clientId: 'expiry', clean: false, properties: { sessionExpiryInterval: 60 } });
    const got = collect(back, 1);
    back.connect();
    const [m] = await got;
    assert.equal(m!.payload, 'long');
    const left = m!.packet.properties?.messageExpiryInterval ?? 0;
    assert.ok(left >= 57 && left <= 58, `expiry left ${left}`);
    await sleep(200);
    assert.equal(b.broker.stats.expired, 1);
  });

  it('disconnects a client that exceeds the Receive Maximum with 0x93', async () => {
    const raw = await b.raw();
    const ack = await raw.handshake(5);
    assert.equal(ack.properties?.receiveMaximum, 2);
    for (const id of [1, 2, 3]) raw.send({ cmd: 'publish', topic: 'rm/t', payload: Buffer.from('x'), qos: 2, messageId: id, dup: false, retain: false }, 5);
    const d = (await raw.next((p) => p.cmd === 'disconnect')) as IDisconnectPacket;
    assert.equal(d.reasonCode, 0x93);
  });

  it("keeps within the client's Receive Maximum", async () => {
    const raw = await b.raw();
    await raw.handshake(5, { properties: { receiveMaximum: 1 } });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'crm/t', qos: 1 }] }, 5);
    await raw.next();
    const pub = await b.client({ protocolVersion: 5 });
    for (const m of ['a', 'b', 'c']) await pub.publishAsync('crm/t', m, { qos: 1 });
    const first = (await raw.next(isPublish)) as IPublishPacket;
    await assert.rejects(raw.next(isPublish, 300));
    raw.send({ cmd: 'puback', messageId: first.messageId! }, 5);
    assert.equal(((await raw.next(isPublish)) as IPublishPacket).payload.toString(), 'b');
  });

  it("does not send a message larger than the client's Maximum Packet Size", async () => {
    const raw = await b.raw();
    await raw.handshake(5, { properties: { maximumPacketSize: 64 } });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'mps/t', qos: 1 }] }, 5);
    await raw.next();
    const dropped = b.broker.stats.dropped;
    const pub = await b.client({ protocolVersion: 5 });
    await pub.publishAsync('mps/t', 'x'.repeat(200), { qos: 1 });
    await pub.publishAsync('mps/t', 'small', { qos: 1 });
    const p = (await raw.next(isPublish)) as IPublishPacket;
    assert.equal(p.payload.toString(), 'small');
    assert.equal(b.broker.stats.dropped, dropped + 1);
  });

  it('resolves topic aliases from the client, and refuses invalid ones (0x94, 0x82)', async () => {
    const sub = await b.client({ protocolVersion: 5 });
    await sub.subscribeAsync('alias/#', { qos: 0 });
    const got = collect(sub, 2);
    const raw = await b.raw();
    await raw.handshake(5);
    raw.send({ cmd: 'publish', topic: 'alias/one', payload: Buffer.from('1'), qos: 0, dup: false, retain: false, properties: { topicAlias: 3 } }, 5);
    raw.send({ cmd: 'publish', topic: '', payload: Buffer.from('2'), qos: 0, dup: false, retain: false, properties: { topicAlias: 3 } }, 5);
    assert.deepEqual((await got).map((g) => [g.topic, g.payload]), [['alias/one', '1'], ['alias/one', '2']]);
    raw.send({ cmd: 'publish', topic: 'alias/x', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, properties: { topicAlias: 5 } }, 5);
    assert.equal(((await raw.next((p) => p.cmd === 'disconnect')) as IDisconnectPacket).reasonCode, 0x94);
    const unknown = await b.raw();
    await unknown.handshake(5);
    unknown.send({ cmd: 'publish', topic: '', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, properties: { topicAlias: 2 } }, 5);
    assert.equal(((await unknown.next((p) => p.cmd === 'disconnect')) as IDisconnectPacket).reasonCode, 0x82);
  });

  it('assigns topic aliases on outgoing messages within the client maximum', async () => {
    const raw = await b.raw();
    await raw.handshake(5, { properties: { topicAliasMaximum: 1 } });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'out/+', qos: 0 }] }, 5);
    await raw.next();
    const pub = await b.client({ protocolVersion: 5 });
    for (const t of ['out/a', 'out/a', 'out/b']) await pub.publishAsync(t, 'x', { qos: 1 });
    const packets = [await raw.next(isPublish), await raw.next(isPublish), await raw.next(isPublish)] as IPublishPacket[];
    assert.deepEqual(packets.map((p) => [p.topic, p.properties?.topicAlias]), [['out/a', 1], ['', 1], ['out/b', undefined]]);
  });

  it('refuses a non-zero Session Expiry Interval in DISCONNECT after 0 in CONNECT (0x82)', async () => {
    const raw = await b.raw();
    await raw.handshake(5);
    raw.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 30 } }, 5);
    assert.equal(((await raw.next((p) => p.cmd === 'disconnect')) as IDisconnectPacket).reasonCode, 0x82);
  });
});

describe('MQTT 5 enhanced authentication', () => {
  it('runs a challenge/response exchange through the hook, and allows re-authentication', async () => {
    const b = await startBroker({}, {
      enhancedAuthenticate: ({ method, data, step }) => {
        if (method !== 'demo') return { reasonCode: 0x8c };
        if (step === 0) return { continue: true, data: Buffer.from('challenge'), state: 'sent' };
        return data?.toString() === 'response' ? { principal: 'demo-user', data: Buffer.from('welcome') } : { reasonCode: 0x87 };
      },
    });
    try {
      const raw = await b.raw();
      raw.setVersion(5);
      raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'ea', clean: true, keepalive: 60, properties: { authenticationMethod: 'demo' } }, 5);
      const challenge = (await raw.next()) as IAuthPacket;
      assert.deepEqual([challenge.cmd, challenge.reasonCode, challenge.properties?.authenticationData?.toString()], ['auth', 0x18, 'challenge']);
      raw.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'demo', authenticationData: Buffer.from('response') } }, 5);
      const ack = (await raw.next()) as IConnackPacket;
      assert.deepEqual([ack.reasonCode, ack.properties?.authenticationMethod, ack.properties?.authenticationData?.toString()], [0, 'demo', 'welcome']);
      raw.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'demo' } }, 5);
      assert.equal(((await raw.next()) as IAuthPacket).reasonCode, 0x18);
      raw.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'demo', authenticationData: Buffer.from('response') } }, 5);
      assert.equal(((await raw.next()) as IAuthPacket).reasonCode, 0);

      const wrong = await b.raw();
      wrong.setVersion(5);
      wrong.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'ea2', clean: true, keepalive: 60, properties: { authenticationMethod: 'demo' } }, 5);
      await wrong.next();
      wrong.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'demo', authenticationData: Buffer.from('guess') } }, 5);
      assert.equal(((await wrong.next()) as IConnackPacket).reasonCode, 0x87);
    } finally {
      await b.stop();
    }
  });

  it('refuses an Authentication Method when no enhanced authentication is configured (0x8C)', async () => {
    const b = await startBroker({ allowAnonymous: true });
    try {
      const raw = await b.raw();
      const ack = await raw.handshake(5, { properties: { authenticationMethod: 'SCRAM-SHA-1' } });
      assert.equal(ack.reasonCode, 0x8c);
    } finally {
      await b.stop();
    }
  });
});
