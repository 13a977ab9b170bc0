// Shared subscriptions (5.0 §4.8.2): when a member's connection ends, the messages it got through its
// group and did not acknowledge go to another connected member of the group, as new deliveries; with
// none connected they wait for the member. Real sockets: the leaving member is a raw client that never
// acknowledges, the others mqtt.js clients.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import type { MqttClient } from 'mqtt';
import { MemoryMqttPersistence } from '../src/mqtt/memory-persistence.js';
import { collect, sleep, startBroker, type RawClient, type TestBroker } from './mqtt-harness.js';

const isPublish = (p: Packet): boolean => p.cmd === 'publish';

/** A raw 5.0 member of `filter` that acknowledges nothing; `receiveMaximum` bounds what is sent before the rest queues. */
async function silentMember(b: TestBroker, clientId: string, filter: string, o: { expiryS?: number; receiveMaximum?: number; qos?: 1 | 2 } = {}): Promise<RawClient> {
  const raw = await b.raw();
  const properties = { sessionExpiryInterval: o.expiryS ?? 0, ...(o.receiveMaximum === undefined ? {} : { receiveMaximum: o.receiveMaximum }) };
  await raw.handshake(5, { clientId, clean: true, properties });
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: o.qos ?? 1, nl: false, rap: false, rh: 0 }] }, 5);
  await raw.next((p) => p.cmd === 'suback');
  return raw;
}

/** Every payload `c` receives, in order. */
function payloads(c: MqttClient): string[] {
  const got: string[] = [];
  c.on('message', (_t, p) => got.push(p.toString()));
  return got;
}

async function publishAll(b: TestBroker, topic: string, bodies: string[], qos: 1 | 2 = 1): Promise<void> {
  const pub = await b.client({ protocolVersion: 5 });
  for (const body of bodies) await pub.publishAsync(topic, body, { qos });
}

describe('a shared subscription member that leaves with messages unacknowledged', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker({ allowAnonymous: true, persistence: new MemoryMqttPersistence() });
  });
  after(() => b.stop());

  it('clean session: what it had in flight and queued goes to the other member, each once', async () => {
    const a = await silentMember(b, 'clean-a', '$share/g1/t1', { receiveMaximum: 2 });
    await publishAll(b, 't1', ['m1', 'm2', 'm3', 'm4']);
    // Two in flight (its Receive Maximum), two queued behind them.
    assert.deepEqual([((await a.next(isPublish)) as IPublishPacket).payload.toString(), ((await a.next(isPublish)) as IPublishPacket).payload.toString()], ['m1', 'm2']);
    const other = await b.client({ protocolVersion: 5, clientId: 'clean-b' });
    await other.subscribeAsync('$share/g1/t1', { qos: 1 });
    const got = collect(other, 4);
    const all = payloads(other);
    a.socket.destroy();
    const received = await got;
    assert.deepEqual(received.map((m) => m.payload), ['m1', 'm2', 'm3', 'm4']);
    assert.ok(received.every((m) => m.packet.dup === false && m.packet.qos === 1), 'new deliveries: DUP 0, QoS 1');
    await sleep(200);
    assert.equal(all.length, 4, 'each once');
  });

  it('persistent session gone offline: its unacknowledged messages go to the connected member, and are not sent to it again on resume', async () => {
    const a = await silentMember(b, 'pers-a', '$share/g2/t2', { expiryS: 300 });
    await publishAll(b, 't2', ['p1', 'p2', 'p3']);
    for (const body of ['p1', 'p2', 'p3']) assert.equal(((await a.next(isPublish)) as IPublishPacket).payload.toString(), body);
    const other = await b.client({ protocolVersion: 5, clientId: 'pers-b' });
    await other.subscribeAsync('$share/g2/t2', { qos: 1 });
    const got = collect(other, 3);
    a.socket.destroy();
    assert.deepEqual((await got).map((m) => m.payload), ['p1', 'p2', 'p3']);
    // The session resumes with nothing left to resend: the messages went to the other member.
    const back = await b.raw();
    const ack = await back.handshake(5, { clientId: 'pers-a', clean: false, properties: { sessionExpiryInterval: 300 } });
    assert.equal(ack.sessionPresent, true);
    await assert.rejects(back.next(isPublish, 300), /no matching packet/);
    assert.equal(b.broker.inflight, 0, 'nothing left in flight anywhere');
  });

  it('QoS 2: a message whose PUBREC came stays with the member; the one without goes to the other member', async () => {
    const a = await silentMember(b, 'q2-a', '$share/g3/t3', { expiryS: 300, qos: 2 });
    await publishAll(b, 't3', ['r1', 'r2'], 2);
    const first = (await a.next(isPublish)) as IPublishPacket;
    const second = (await a.next(isPublish)) as IPublishPacket;
    assert.deepEqual([first.payload.toString(), second.payload.toString()], ['r1', 'r2']);
    a.send({ cmd: 'pubrec', messageId: first.messageId! }, 5);
    await a.next((p) => p.cmd === 'pubrel');
    const other = await b.client({ protocolVersion: 5, clientId: 'q2-b' });
    await other.subscribeAsync('$share/g3/t3', { qos: 2 });
    const all = payloads(other);
    const got = collect(other, 1);
    a.socket.destroy();
    assert.deepEqual((await got).map((m) => m.payload), ['r2']);
    // The member resumes and is asked to complete r1's exchange: PUBREL again for its packet id.
    const back = await b.raw();
    await back.handshake(5, { clientId: 'q2-a', clean: false, properties: { sessionExpiryInterval: 300 } });
    const rel = await back.next((p) => p.cmd === 'pubrel');
    assert.equal(rel.messageId, first.messageId);
    await sleep(200);
    assert.deepEqual(all, ['r2'], 'r1 was delivered to the first member: not sent to the other');
  });

  it('keeps them for the member when no other member is connected, and resends them when it resumes', async () => {
    // Another member exists but is offline (a persistent session without a connection).
    const offline = await b.client({ protocolVersion: 5, clientId: 'keep-offline', clean: false, properties: { sessionExpiryInterval: 300 } });
    await offline.subscribeAsync('$share/g4/t4', { qos: 1 });
    await offline.endAsync();
    const a = await silentMember(b, 'keep-a', '$share/g4/t4', { expiryS: 300 });
    await publishAll(b, 't4', ['k1', 'k2']);
    for (const body of ['k1', 'k2']) assert.equal(((await a.next(isPublish)) as IPublishPacket).payload.toString(), body);
    a.socket.destroy();
    await a.closed;
    const back = await b.raw();
    await back.handshake(5, { clientId: 'keep-a', clean: false, properties: { sessionExpiryInterval: 300 } });
    const again = [(await back.next(isPublish)) as IPublishPacket, (await back.next(isPublish)) as IPublishPacket];
    assert.deepEqual(again.map((p) => [p.payload.toString(), p.dup]), [['k1', true], ['k2', true]]);
  });
});
