/**
 * The behaviour every MqttPersistence must have, run by test/contracts.test.ts against each backend, whose
 * `make` returns a fresh, empty persistence and, for durable backends, `reopen` to open the
 * same data again after `p` is closed. The suite closes what it opens.
 */
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttPersistence, QueuedMessage, StoredMessage, StoredSession } from '../src/mqtt/persistence.js';
import type { ContractSuite } from './support/contracts.js';

export interface OpenedPersistence {
  p: MqttPersistence;
  reopen?: () => Promise<MqttPersistence>;
}

const NEVER = 0xffffffff;

function session(clientId: string, over: Partial<StoredSession> = {}): StoredSession {
  return {
    clientId,
    owner: `owner-of-${clientId}`,
    protocolVersion: 5,
    expiryIntervalS: 3600,
    disconnectedAt: null,
    subscriptions: [
      { filter: 'sensors/+/temp', qos: 1, noLocal: false, retainAsPublished: true, retainHandling: 0, subscriptionId: 7 },
      { filter: 'alerts/#', qos: 2, noLocal: true, retainAsPublished: false, retainHandling: 2 },
    ],
    ...over,
  };
}

function message(topic: string, over: Partial<StoredMessage> = {}): StoredMessage {
  return { topic, payload: Buffer.from(topic), qos: 1, retain: false, ...over };
}

/** Every field a queue can hold: binary payload, MQTT 5 properties with Buffers and arrays, expiry. */
const rich = {
  topic: 'devices/d1/reply',
  payload: Buffer.from([0, 1, 0, 255, 0]),
  qos: 2,
  retain: true,
  properties: {
    payloadFormatIndicator: false,
    contentType: 'application/octet-stream',
    responseTopic: 'devices/d1/req',
    correlationData: Buffer.from([0, 0xfe, 0, 0x01]),
    userProperties: { region: 'eu', tag: ['a', 'b', 'a'] },
  },
  expiresAt: 1_900_000_000_123,
  subscriptionIds: [7, 42],
  shareGroup: '$share/workers/devices/+/reply',
} satisfies StoredMessage & { subscriptionIds: number[]; shareGroup: string };
const { subscriptionIds: _ids, shareGroup: _group, ...richRetained } = rich;

export interface MqttPersistenceProperties {
  /** The implementation keeps its data across close and reopen (it must then give `reopen`). */
  durable: boolean;
}

export const mqttPersistenceContract: ContractSuite<OpenedPersistence, [], MqttPersistenceProperties> = (implementation) => {
  /** Opens a fresh persistence, closed after the test unless the test closed it itself. */
  async function fresh(t: TestContext): Promise<OpenedPersistence & { close: () => Promise<void> }> {
    const opened = await implementation.make();
    let closed = false;
    const close = async (): Promise<void> => {
      if (!closed) await opened.p.close();
      closed = true;
    };
    t.after(close);
    return { ...opened, close };
  }

  describe('sessions', () => {
    it('a saved session comes back with owner, version, expiry and subscriptions; others are unknown', async (t) => {
      const { p } = await fresh(t);
      assert.equal(await p.getSession('c1'), undefined);
      const s = session('c1', { protocolVersion: 4, expiryIntervalS: NEVER, disconnectedAt: 1_700_000_000_000 });
      await p.saveSession(s);
      assert.deepEqual(await p.getSession('c1'), s);
    });

    it('saving again replaces the session but keeps its queue', async (t) => {
      const { p } = await fresh(t);
      await p.saveSession(session('c1'));
      await p.enqueue('c1', [message('a')]);
      const changed = session('c1', { owner: 'u2', protocolVersion: 3, disconnectedAt: 5, subscriptions: [] });
      await p.saveSession(changed);
      assert.deepEqual(await p.getSession('c1'), changed);
      assert.equal(await p.countQueued('c1'), 1);
    });

    it('changing a session object after saving it changes nothing stored', async (t) => {
      const { p } = await fresh(t);
      const s = session('c1');
      await p.saveSession(s);
      s.subscriptions[0]!.qos = 0;
      s.subscriptions.push({ filter: 'x', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 });
      assert.deepEqual(await p.getSession('c1'), session('c1'));
    });

    it("deleting a session removes its queue and pending QoS 2 ids, and no one else's", async (t) => {
      const { p } = await fresh(t);
      for (const id of ['c1', 'c2']) {
        await p.saveSession(session(id));
        await p.enqueue(id, [message('a'), message('b')]);
        await p.addIncomingQos2(id, 10);
      }
      await p.setRetained(message('r', { retain: true }));
      await p.deleteSession('c1');
      assert.equal(await p.getSession('c1'), undefined);
      assert.equal(await p.countQueued('c1'), 0);
      assert.deepEqual(await p.queued('c1', 10), []);
      assert.deepEqual(await p.incomingQos2('c1'), []);
      assert.ok(await p.getSession('c2'));
      assert.equal(await p.countQueued('c2'), 2);
      assert.deepEqual(await p.incomingQos2('c2'), [10]);
      assert.equal((await p.allRetained()).length, 1);
      await p.deleteSession('nobody');
    });

    it('lists the client id and owner of every stored session, without deleted ones', async (t) => {
      const { p } = await fresh(t);
      assert.deepEqual(await p.sessionOwners(), []);
      await p.saveSession(session('c1', { owner: 'device:a' }));
      await p.saveSession(session('c2', { owner: 'device:a' }));
      await p.saveSession(session('c3', { owner: 'user:b' }));
      await p.saveSession(session('c2', { owner: 'user:b' }));
      await p.deleteSession('c1');
      const owners = (await p.sessionOwners()).sort((x, y) => x.clientId.localeCompare(y.clientId));
      assert.deepEqual(owners, [{ clientId: 'c2', owner: 'user:b' }, { clientId: 'c3', owner: 'user:b' }]);
    });

    it('a session expires once its interval has passed since disconnect, not before', async (t) => {
      const { p } = await fresh(t);
      const at = 1_700_000_000_000;
      await p.saveSession(session('connected', { expiryIntervalS: 0, disconnectedAt: null }));
      await p.saveSession(session('never', { expiryIntervalS: NEVER, disconnectedAt: 0 }));
      await p.saveSession(session('zero', { expiryIntervalS: 0, disconnectedAt: at }));
      await p.saveSession(session('minute', { expiryIntervalS: 60, disconnectedAt: at }));
      await p.saveSession(session('long', { expiryIntervalS: NEVER - 1, disconnectedAt: at }));
      const expired = async (now: number) => (await p.expiredSessions(now)).sort();
      assert.deepEqual(await expired(at - 1), []);
      assert.deepEqual(await expired(at), ['zero']);
      assert.deepEqual(await expired(at + 59_999), ['zero']);
      assert.deepEqual(await expired(at + 60_000), ['minute', 'zero']);
      assert.deepEqual(await expired(at + (NEVER - 1) * 1000), ['long', 'minute', 'zero']);
      assert.deepEqual(await expired(Number.MAX_SAFE_INTEGER), ['long', 'minute', 'zero']);
    });
  });

  describe('queue', () => {
    it('keeps every field of a message: zero bytes in payload, Buffers and arrays in properties, expiry, the shared group it was picked for', async (t) => {
      const { p } = await fresh(t);
      const [seq] = await p.enqueue('c1', [rich]);
      const expected: QueuedMessage = { ...rich, seq: seq!, released: false };
      assert.deepEqual(await p.queued('c1', 10), [expected]);
    });

    it('leaves unset optional fields out, and keeps an empty payload empty', async (t) => {
      const { p } = await fresh(t);
      const [seq] = await p.enqueue('c1', [{ topic: 't', payload: Buffer.alloc(0), qos: 0, retain: false }]);
      assert.deepEqual(await p.queued('c1', 10), [{ seq, topic: 't', payload: Buffer.alloc(0), qos: 0, retain: false, released: false }]);
    });

    it('returns increasing seqs and gives messages back in the order they were queued', async (t) => {
      const { p } = await fresh(t);
      const first = await p.enqueue('c1', [message('a'), message('b')]);
      const second = await p.enqueue('c1', [message('c')]);
      assert.deepEqual(await p.enqueue('c1', []), []);
      const seqs = [...first, ...second];
      assert.deepEqual([...seqs].sort((a, b) => a - b), seqs);
      assert.equal(new Set(seqs).size, 3);
      const queued = await p.queued('c1', 10);
      assert.deepEqual(queued.map((m) => [m.seq, m.topic]), [[seqs[0], 'a'], [seqs[1], 'b'], [seqs[2], 'c']]);
    });

    it('keeps one queue per client', async (t) => {
      const { p } = await fresh(t);
      await p.enqueue('c1', [message('a')]);
      await p.enqueue('c2', [message('b'), message('c')]);
      assert.deepEqual((await p.queued('c1', 10)).map((m) => m.topic), ['a']);
      assert.deepEqual((await p.queued('c2', 10)).map((m) => m.topic), ['b', 'c']);
    });

    it('never reuses a seq, even after the queue has emptied', async (t) => {
      const { p } = await fresh(t);
      const [old] = await p.enqueue('c1', [message('a')]);
      await p.removeQueued('c1', old!);
      const [next] = await p.enqueue('c1', [message('b')]);
      assert.ok(next! > old!);
    });

    it('queues a large batch in order in one call', async (t) => {
      const { p } = await fresh(t);
      const batch = Array.from({ length: 2500 }, (_, i) => message(`t/${i}`, { payload: Buffer.from([i & 0xff, 0]) }));
      const seqs = await p.enqueue('c1', batch);
      assert.equal(seqs.length, 2500);
      assert.equal(await p.countQueued('c1'), 2500);
      const queued = await p.queued('c1', 3000);
      assert.deepEqual(queued.map((m) => m.seq), seqs);
      assert.deepEqual(queued[2499]!.payload, Buffer.from([2499 & 0xff, 0]));
    });

    it('messages handed in or out are copies: changing them changes nothing stored', async (t) => {
      const { p } = await fresh(t);
      const m = message('a');
      await p.enqueue('c1', [m]);
      m.topic = 'changed';
      const [out] = await p.queued('c1', 10);
      out!.packetId = 5;
      out!.released = true;
      assert.deepEqual((await p.queued('c1', 10)).map((q) => [q.topic, q.packetId, q.released]), [['a', undefined, false]]);
    });

    it('takes calls in the order they were made, awaited or not', async (t) => {
      const { p } = await fresh(t);
      const calls = [p.enqueue('c1', [message('before')]), p.deleteSession('c1'), p.enqueue('c1', [message('after')])];
      const count = p.countQueued('c1');
      await Promise.all(calls);
      assert.equal(await count, 1);
      assert.deepEqual((await p.queued('c1', 10)).map((m) => m.topic), ['after']);
    });

    it('a fan-out of thousands of concurrent enqueues keeps every message, in order per client', async (t) => {
      const { p } = await fresh(t);
      const seqs = await Promise.all(Array.from({ length: 3000 }, (_, i) => p.enqueue(`c${i % 3}`, [message(`t/${i}`)])));
      assert.equal(new Set(seqs.flat()).size, 3000);
      for (let c = 0; c < 3; c++) {
        const topics = (await p.queued(`c${c}`, 5000)).map((m) => m.topic);
        assert.deepEqual(topics, Array.from({ length: 1000 }, (_, i) => `t/${i * 3 + c}`));
      }
    });

    it('returns at most `limit` messages, and none for a limit of zero', async (t) => {
      const { p } = await fresh(t);
      await p.enqueue('c1', ['a', 'b', 'c'].map((x) => message(x)));
      assert.deepEqual((await p.queued('c1', 2)).map((m) => m.topic), ['a', 'b']);
      assert.deepEqual(await p.queued('c1', 0), []);
    });

    it('puts messages in flight before queued ones, and keeps their packet id and release', async (t) => {
      const { p } = await fresh(t);
      const [a, b, c] = await p.enqueue('c1', ['a', 'b', 'c'].map((x) => message(x, { qos: 2 })));
      await p.updateQueued('c1', c!, { packetId: 9 });
      await p.updateQueued('c1', b!, { packetId: 8 });
      await p.updateQueued('c1', b!, { released: true });
      const queued = await p.queued('c1', 10);
      assert.deepEqual(queued.map((m) => [m.seq, m.packetId, m.released]), [[b, 8, true], [c, 9, false], [a, undefined, false]]);
      assert.deepEqual((await p.queued('c1', 1)).map((m) => m.topic), ['b']);
    });

    it('updating or removing a seq of another client, or an unknown seq, changes nothing', async (t) => {
      const { p } = await fresh(t);
      const [seq] = await p.enqueue('c1', [message('a')]);
      await p.updateQueued('c2', seq!, { packetId: 1, released: true });
      await p.updateQueued('c1', seq! + 1000, { packetId: 1 });
      await p.removeQueued('c2', seq!);
      await p.removeQueued('c1', seq! + 1000);
      const [m] = await p.queued('c1', 10);
      assert.equal(m?.packetId, undefined);
      assert.equal(m?.released, false);
    });

    it('an acknowledged message leaves the queue and the count', async (t) => {
      const { p } = await fresh(t);
      const [a, b] = await p.enqueue('c1', [message('a'), message('b')]);
      await p.updateQueued('c1', a!, { packetId: 1 });
      await p.removeQueued('c1', a!);
      assert.equal(await p.countQueued('c1'), 1);
      assert.deepEqual((await p.queued('c1', 10)).map((m) => m.seq), [b]);
    });
  });

  describe('incoming QoS 2', () => {
    it('remembers packet ids until released, once each, per client', async (t) => {
      const { p } = await fresh(t);
      await p.addIncomingQos2('c1', 300);
      await p.addIncomingQos2('c1', 2);
      await p.addIncomingQos2('c1', 300);
      await p.addIncomingQos2('c2', 2);
      assert.deepEqual(await p.incomingQos2('c1'), [2, 300]);
      await p.removeIncomingQos2('c1', 2);
      await p.removeIncomingQos2('c1', 999);
      assert.deepEqual(await p.incomingQos2('c1'), [300]);
      assert.deepEqual(await p.incomingQos2('c2'), [2]);
      assert.deepEqual(await p.incomingQos2('c3'), []);
    });
  });

  describe('retained messages', () => {
    it('keeps the last message per topic with its properties and expiry', async (t) => {
      const { p } = await fresh(t);
      await p.setRetained(message('a', { payload: Buffer.from('old') }));
      await p.setRetained(message('a', { payload: Buffer.from('new'), retain: true, qos: 0 }));
      await p.setRetained(richRetained);
      const all = (await p.allRetained()).sort((x, y) => (x.topic < y.topic ? -1 : 1));
      assert.deepEqual(all, [{ topic: 'a', payload: Buffer.from('new'), qos: 0, retain: true }, richRetained]);
    });

    it('an empty payload clears the topic, and clearing an unknown topic is harmless', async (t) => {
      const { p } = await fresh(t);
      await p.setRetained(message('a', { retain: true }));
      await p.setRetained(message('b', { retain: true }));
      await p.setRetained(message('a', { payload: Buffer.alloc(0), retain: true }));
      await p.setRetained(message('zzz', { payload: Buffer.alloc(0), retain: true }));
      assert.deepEqual((await p.allRetained()).map((m) => m.topic), ['b']);
    });

    it('indexes retained messages with their charge, payloads only up to the size asked; getRetained reads one whole', async (t) => {
      const { p } = await fresh(t);
      await p.setRetained(message('small', { payload: Buffer.from('tiny'), retain: true }), { owner: 'device:d1', bytes: 9 });
      await p.setRetained(richRetained, { owner: 'user:u1', bytes: 5000 });
      const index = (await p.retainedIndex(100)).sort((x, y) => (x.topic < y.topic ? -1 : 1));
      const rest = { ...richRetained } as Partial<typeof richRetained>;
      delete rest.payload;
      delete rest.properties;
      delete rest.retain;
      assert.deepEqual(index, [
        { ...rest, owner: 'user:u1', bytes: 5000 },
        { topic: 'small', qos: 1, owner: 'device:d1', bytes: 9, payload: Buffer.from('tiny') },
      ]);
      assert.deepEqual(await p.getRetained(richRetained.topic), richRetained);
      assert.equal(await p.getRetained('nothing here'), undefined);
      // Larger than asked for, the properties stay behind with the payload.
      assert.equal((await p.retainedIndex(10_000)).find((r) => r.topic === richRetained.topic)?.properties !== undefined, true);
    });
  });

  if (implementation.properties?.durable === true) it('survives close and reopen with sessions, queues in flight, QoS 2 ids and retained messages', async (t) => {
    const { p, reopen, close } = await fresh(t);
    assert.ok(reopen, 'a durable implementation gives reopen');
    const s = session('c1', { disconnectedAt: 1_700_000_000_000 });
    await p.saveSession(s);
    const [a, b] = await p.enqueue('c1', [rich, message('plain')]);
    await p.updateQueued('c1', b!, { packetId: 77, released: true });
    await p.addIncomingQos2('c1', 5);
    await p.setRetained(richRetained);
    await close();

    const again = await reopen();
    t.after(() => again.close());
    assert.deepEqual(await again.getSession('c1'), s);
    const queued = await again.queued('c1', 10);
    assert.deepEqual(queued, [
      { ...message('plain'), seq: b, packetId: 77, released: true },
      { ...rich, seq: a, released: false },
    ]);
    assert.deepEqual(await again.incomingQos2('c1'), [5]);
    assert.deepEqual(await again.allRetained(), [richRetained]);
    assert.deepEqual(await again.expiredSessions(Number.MAX_SAFE_INTEGER), ['c1']);
    const [next] = await again.enqueue('c1', [message('after')]);
    assert.ok(next! > b!, 'seqs continue above those already stored');
  });
};
