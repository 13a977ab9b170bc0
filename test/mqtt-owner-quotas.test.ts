import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryMqttPersistence } from '../src/mqtt/memory-persistence.js';
import type { BrokerOptions } from '../src/mqtt/options.js';
import { collect, sleep, startBroker, type TestBroker } from './mqtt-harness.js';

// Every anonymous client is principal 'anonymous': one owner, whatever its client ids.

/** CONNECTs `clientId` with a session that outlives the connection; the CONNACK code (3.1.1 return code or 5.0 reason code). */
async function persistent(b: TestBroker, clientId: string, version: 4 | 5 = 5, expiryS = 3600): Promise<{ code: number; present: boolean }> {
  const raw = await b.raw();
  const ack = version === 5
    ? await raw.handshake(5, { clientId, clean: false, properties: { sessionExpiryInterval: expiryS } })
    : await raw.handshake(4, { clientId, clean: false });
  const code = (version === 5 ? ack.reasonCode : ack.returnCode) ?? -1;
  if (code === 0) {
    raw.send({ cmd: 'disconnect' }, version);
    await raw.closesWithin();
  }
  return { code, present: ack.sessionPresent };
}

async function withBroker(options: BrokerOptions, run: (b: TestBroker) => Promise<void>): Promise<void> {
  const b = await startBroker({ allowAnonymous: true, ...options });
  try {
    await run(b);
  } finally {
    await b.stop();
  }
}

describe('MQTT sessions per owner', () => {
  it('refuses one persistent session past maxSessionsPerOwner with CONNACK 0x97 (5.0) and 3 (3.1.1)', () =>
    withBroker({ maxSessionsPerOwner: 3, persistence: new MemoryMqttPersistence() }, async (b) => {
      for (const id of ['s1', 's2']) assert.equal((await persistent(b, id)).code, 0);
      assert.equal((await persistent(b, 's3', 4)).code, 0);
      assert.equal((await persistent(b, 's4', 5)).code, 0x97);
      assert.equal((await persistent(b, 's4', 4)).code, 3);
      assert.equal(b.broker.stats.sessionsRefused, 2);
      assert.equal(b.broker.sessions, 3, 'the refused CONNECTs left no session behind');
    }));

  it('resuming one of its sessions, and sessions that end with their connection, are always allowed', () =>
    withBroker({ maxSessionsPerOwner: 2, persistence: new MemoryMqttPersistence() }, async (b) => {
      assert.equal((await persistent(b, 'a')).code, 0);
      assert.equal((await persistent(b, 'b')).code, 0);
      const resumed = await persistent(b, 'a');
      assert.deepEqual(resumed, { code: 0, present: true });
      // Clean sessions at the limit: several at once, connected.
      const clean = await Promise.all(['c1', 'c2', 'c3'].map(async (clientId) => {
        const raw = await b.raw();
        return (await raw.handshake(5, { clientId, clean: true })).reasonCode;
      }));
      assert.deepEqual(clean, [0, 0, 0]);
      assert.equal((await persistent(b, 'c')).code, 0x97);
    }));

  it('a session ended by a clean start, or by its expiry, frees its slot', () =>
    withBroker({ maxSessionsPerOwner: 2, persistence: new MemoryMqttPersistence() }, async (b) => {
      assert.equal((await persistent(b, 'a')).code, 0);
      assert.equal((await persistent(b, 'short', 5, 1)).code, 0);
      assert.equal((await persistent(b, 'b')).code, 0x97);
      // Session 'a' ends with a clean start that keeps nothing.
      const raw = await b.raw();
      assert.equal((await raw.handshake(4, { clientId: 'a', clean: true })).returnCode, 0);
      raw.send({ cmd: 'disconnect' }, 4);
      await raw.closesWithin();
      assert.equal((await persistent(b, 'b')).code, 0);
      assert.equal((await persistent(b, 'c')).code, 0x97);
      // 'short' expires one second after its disconnect.
      for (const deadline = Date.now() + 10_000; b.broker.sessions > 1 && Date.now() < deadline;) await sleep(50);
      assert.equal((await persistent(b, 'c')).code, 0);
    }));

  it('sessions stored before a restart count towards the limit, and can be resumed', async () => {
    const persistence = new MemoryMqttPersistence();
    await withBroker({ maxSessionsPerOwner: 2, persistence }, async (b) => {
      assert.equal((await persistent(b, 'a')).code, 0);
      assert.equal((await persistent(b, 'b')).code, 0);
    });
    await withBroker({ maxSessionsPerOwner: 2, persistence }, async (b) => {
      assert.equal(b.broker.sessions, 0, 'stored sessions are not in memory until resumed');
      assert.equal((await persistent(b, 'c')).code, 0x97);
      assert.deepEqual(await persistent(b, 'b'), { code: 0, present: true });
    });
  });

  it('each principal has slots of its own', async () => {
    const b = await startBroker({ maxSessionsPerOwner: 1, persistence: new MemoryMqttPersistence() }, { authenticate: (req) => ({ principal: req.username ?? '' }) });
    try {
      const as = async (username: string, clientId: string) => {
        const raw = await b.raw();
        return (await raw.handshake(5, { clientId, clean: false, username, password: Buffer.from('x'), properties: { sessionExpiryInterval: 60 } })).reasonCode;
      };
      assert.equal(await as('device:a', 'a-1'), 0);
      assert.equal(await as('device:b', 'b-1'), 0);
      assert.equal(await as('device:a', 'a-2'), 0x97);
      assert.equal(await as('device:b', 'b-2'), 0x97);
    } finally {
      await b.stop();
    }
  });
});

describe('MQTT queued bytes per owner', () => {
  it("stops queuing for an owner's offline sessions at maxQueuedBytesPerOwner, counts the drops, and takes messages again once delivered", () =>
    withBroker({ maxQueuedBytesPerOwner: 10_000, persistence: new MemoryMqttPersistence() }, async (b) => {
      const ids = ['q1', 'q2', 'q3', 'q4', 'q5'];
      for (const clientId of ids) {
        const sub = await b.client({ protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 3600 } });
        await sub.subscribeAsync('t/x', { qos: 1 });
        await sub.endAsync();
      }
      const pub = await b.client({ protocolVersion: 5, clientId: 'pub' });
      // 3 (topic) + 97 = 100 bytes each.
      const payload = (i: number) => `${String(i).padStart(3, '0')}${'p'.repeat(94)}`;
      for (let i = 1; i <= 100; i++) await pub.publishAsync('t/x', payload(i), { qos: 1 });
      // 500 copies wanted, 100 fit.
      assert.equal(b.broker.queued, 100);
      assert.equal(b.broker.stats.droppedOwnerQuota, 400);
      assert.equal(b.broker.stats.dropped, 400);
      // Drop-oldest: each session made room in its own queue, and what waits there is the newest.
      const back = b.unconnected({ protocolVersion: 5, clientId: 'q1', clean: false, properties: { sessionExpiryInterval: 3600 } });
      const got = collect(back, 20);
      back.connect();
      assert.deepEqual((await got).map((m) => Number(m.payload.slice(0, 3))), Array.from({ length: 20 }, (_, i) => 81 + i));
      await back.endAsync();
      for (const clientId of ids.slice(1)) {
        const c = b.unconnected({ protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 3600 } });
        const all = collect(c, 20);
        c.connect();
        assert.equal((await all).length, 20);
        await c.endAsync();
      }
      assert.equal(b.broker.queued, 0);
      await pub.publishAsync('t/x', payload(101), { qos: 1 });
      assert.equal(b.broker.queued, 5, 'room again once the queued messages were delivered');
      assert.equal(b.broker.stats.droppedOwnerQuota, 400);
    }));

  it('with drop-new, the first messages stay and later ones are dropped', () =>
    withBroker({ maxQueuedBytesPerOwner: 1_000, dropPolicy: 'drop-new', persistence: new MemoryMqttPersistence() }, async (b) => {
      const sub = await b.client({ protocolVersion: 5, clientId: 'n1', clean: false, properties: { sessionExpiryInterval: 3600 } });
      await sub.subscribeAsync('t/n', { qos: 1 });
      await sub.endAsync();
      const pub = await b.client({ protocolVersion: 5 });
      for (let i = 0; i < 20; i++) await pub.publishAsync('t/n', `${String(i).padStart(2, '0')}${'x'.repeat(95)}`, { qos: 1 });
      assert.equal(b.broker.queued, 10);
      const back = b.unconnected({ protocolVersion: 5, clientId: 'n1', clean: false, properties: { sessionExpiryInterval: 3600 } });
      const got = collect(back, 10);
      back.connect();
      assert.deepEqual((await got).map((m) => m.payload.slice(0, 2)), ['00', '01', '02', '03', '04', '05', '06', '07', '08', '09']);
    }));
});
