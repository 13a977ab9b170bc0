/**
 * The behaviour every RetainedSource (src/mqtt/retained-source.ts) must have, run by
 * test/contracts.test.ts against each implementation. `make` gets the quotas and returns a fresh,
 * empty source and, for one every node shares, `other()`: a second instance on the same data (another
 * node). The suite closes what it opens.
 */
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../src/mqtt/message.js';
import { retainedBytes } from '../src/mqtt/retained.js';
import type { RetainedQuotas, RetainedSource } from '../src/mqtt/retained-source.js';
import type { ContractSuite } from './support/contracts.js';

export interface OpenedSource {
  source: RetainedSource;
  /** Another instance on the same data, as another node would have; only for shared sources. */
  other?: () => Promise<RetainedSource>;
  close(): Promise<void>;
}

const ROOMY: RetainedQuotas = { maxPerOwner: 100_000, maxBytesPerOwner: 1e12, maxTotal: 100_000, maxBytes: 1e12 };

function msg(topic: string, payload: string | Buffer = topic, over: Partial<Message> = {}): Message {
  return { topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), qos: 1, retain: true, properties: undefined, expiresAt: undefined, senderId: undefined, ...over };
}

async function all(it: AsyncIterable<Message>): Promise<Message[]> {
  const out: Message[] = [];
  for await (const m of it) out.push(m);
  return out;
}

const topics = async (s: RetainedSource, filter: string, now = Date.now()): Promise<string[]> => (await all(s.matching(filter, now))).map((m) => m.topic).sort();

async function put(s: RetainedSource, m: Message, owner = 'device:d1'): Promise<string | null> {
  return s.set(m, owner, retainedBytes(m));
}

export interface RetainedSourceProperties {
  /** Every node sees the same messages: `other` is given. */
  shared: boolean;
}

export const retainedSourceContract: ContractSuite<OpenedSource, [RetainedQuotas], RetainedSourceProperties> = (impl) => {
  const open = async (t: TestContext, quotas: RetainedQuotas = ROOMY): Promise<OpenedSource> => {
    const o = await impl.make(quotas);
    t.after(() => o.close());
    return o;
  };

  describe('retained messages', () => {
    it('gives back a retained message with its payload, QoS, properties and expiry, RETAIN set', async (t) => {
      const { source } = await open(t);
      const expiresAt = Date.now() + 3_600_000;
      const properties = { contentType: 'application/json', correlationData: Buffer.from([0, 255, 1]), userProperties: { a: 'b', list: ['x', 'y'] } };
      assert.equal(await put(source, msg('devices/d1/state', Buffer.from([0, 1, 2, 255]), { qos: 2, properties, expiresAt })), null);
      const [m, ...rest] = await all(source.matching('devices/d1/state', Date.now()));
      assert.equal(rest.length, 0);
      assert.equal(m!.topic, 'devices/d1/state');
      assert.deepEqual(m!.payload, Buffer.from([0, 1, 2, 255]));
      assert.equal(m!.qos, 2);
      assert.equal(m!.retain, true);
      assert.equal(m!.expiresAt, expiresAt);
      assert.deepEqual(m!.properties, properties);
    });

    it('keeps one message per topic: the last one set, and none once cleared with an empty payload', async (t) => {
      const { source } = await open(t);
      await put(source, msg('a/b', 'first'));
      await put(source, msg('a/b', 'second'));
      assert.deepEqual((await all(source.matching('a/b', Date.now()))).map((m) => m.payload.toString()), ['second']);
      assert.equal(source.count, 1);
      assert.equal(await put(source, msg('a/b', '')), null);
      assert.deepEqual(await topics(source, '#'), []);
      assert.equal(source.count, 0);
      assert.equal(source.bytes, 0);
    });

    it('matches exactly the topics a filter names: #, a/# with a itself, +/+, and $ topics only by name', async (t) => {
      const { source } = await open(t);
      for (const topic of ['a', 'a/b', 'a/b/c', 'ab', 'b/c', '/x', '$SYS/x', '$app/y', 'a/$z']) await put(source, msg(topic));
      assert.deepEqual(await topics(source, '#'), ['/x', 'a', 'a/$z', 'a/b', 'a/b/c', 'ab', 'b/c']);
      assert.deepEqual(await topics(source, 'a/#'), ['a', 'a/$z', 'a/b', 'a/b/c']);
      assert.deepEqual(await topics(source, '+/+'), ['/x', 'a/$z', 'a/b', 'b/c']);
      assert.deepEqual(await topics(source, '+'), ['a', 'ab']);
      assert.deepEqual(await topics(source, '$SYS/#'), ['$SYS/x']);
      assert.deepEqual(await topics(source, '+/x'), ['/x']);
      assert.deepEqual(await topics(source, 'a/+/c'), ['a/b/c']);
    });

    it('matches %, _ and \\ in topics only as themselves', async (t) => {
      const { source } = await open(t);
      for (const topic of ['100%', '1000', '100%/x', '1000/x', 'a_b', 'axb', 'a_b/c', 'axb/c', 'a\\b', 'a\\\\b', 'a.b', 'a*b']) await put(source, msg(topic));
      assert.deepEqual(await topics(source, '100%'), ['100%']);
      assert.deepEqual(await topics(source, '100%/#'), ['100%', '100%/x']);
      assert.deepEqual(await topics(source, 'a_b/#'), ['a_b', 'a_b/c']);
      assert.deepEqual(await topics(source, 'a\\b'), ['a\\b']);
      assert.deepEqual(await topics(source, 'a\\b/#'), ['a\\b']);
      assert.deepEqual(await topics(source, 'a.b'), ['a.b']);
      assert.deepEqual(await topics(source, '+/c'), ['a_b/c', 'axb/c']);
    });

    it('streams a match over many pages, every message once', async (t) => {
      const { source } = await open(t);
      const want: string[] = [];
      for (let i = 0; i < 300; i++) {
        const topic = `fleet/${String(i).padStart(3, '0')}/state`;
        want.push(topic);
        await put(source, msg(topic));
      }
      assert.deepEqual(await topics(source, 'fleet/+/state'), want);
      // A reader that stops early leaves nothing behind.
      let n = 0;
      for await (const _ of source.matching('#', Date.now())) if (++n === 5) break;
      assert.equal(n, 5);
    });

    it('does not deliver an expired message, and a sweep stops it counting', async (t) => {
      const { source } = await open(t);
      const now = Date.now();
      await put(source, msg('t/expired', 'x', { expiresAt: now - 1 }));
      await put(source, msg('t/later', 'y', { expiresAt: now + 60_000 }), 'device:d2');
      await put(source, msg('t/later2', 'y', { expiresAt: now + 60_000 }), 'device:d2');
      await put(source, msg('t/never', 'z'));
      assert.deepEqual(await topics(source, 't/#', now), ['t/later', 't/later2', 't/never']);
      assert.deepEqual(await topics(source, 't/#', now + 120_000), ['t/never']);
      // Three owners' messages gone in one sweep: each count is right afterwards.
      await source.sweep(now + 120_000);
      assert.equal(source.count, 1);
      assert.equal(source.bytes, retainedBytes(msg('t/never', 'z')));
    });

    it('frees an owner\'s quota when its expired messages are swept', async (t) => {
      const { source } = await open(t, { ...ROOMY, maxPerOwner: 2 });
      const now = Date.now();
      await put(source, msg('s/1', 'x', { expiresAt: now + 1000 }));
      await put(source, msg('s/2', 'x', { expiresAt: now + 1000 }));
      assert.match((await put(source, msg('s/3'))) ?? '', /2 retained messages per owner/);
      await source.sweep(now + 2000);
      assert.equal(await put(source, msg('s/3')), null);
    });

    it('counts messages and bytes per owner against the quotas, replacing and clearing freeing them', async (t) => {
      const { source } = await open(t, { maxPerOwner: 2, maxBytesPerOwner: 1000, maxTotal: 3, maxBytes: 1e6 });
      assert.equal(await put(source, msg('q/1')), null);
      assert.equal(await put(source, msg('q/2')), null);
      assert.match((await put(source, msg('q/3'))) ?? '', /2 retained messages per owner/);
      // Replacing its own is no new topic; another owner still has room, until the hub is full.
      assert.equal(await put(source, msg('q/2', 'again')), null);
      assert.equal(await put(source, msg('q/3'), 'device:d2'), null);
      assert.match((await put(source, msg('q/4'), 'device:d3')) ?? '', /the hub holds 3/);
      assert.deepEqual(await topics(source, 'q/#'), ['q/1', 'q/2', 'q/3']);
      assert.equal(await put(source, msg('q/1', '')), null);
      assert.equal(await put(source, msg('q/4')), null);
      assert.match((await put(source, msg('q/3', 'x'.repeat(2000)), 'device:d9')) ?? '', /1000 bytes of retained messages per owner/);
      assert.equal(source.count, 3);
      // The hub's own: counted, never refused.
      assert.equal(await source.set(msg('hub/status'), '', 10, false), null);
      assert.equal(source.count, 4);
      assert.match((await put(source, msg('q/5'), 'device:d4')) ?? '', /the hub holds 3/);
    });

    if (impl.properties?.shared === true) it('shows a message set through one instance to another at once, and its clearing', async (t) => {
      const { source, other } = await open(t);
      const b = await other!();
      await put(source, msg('shared/x', 'from A'));
      assert.deepEqual((await all(b.matching('shared/#', Date.now()))).map((m) => m.payload.toString()), ['from A']);
      await put(b, msg('shared/x', ''));
      assert.deepEqual(await topics(source, 'shared/#'), []);
    });

    if (impl.properties?.shared === true) it('enforces one owner\'s quota across instances, even racing', async (t) => {
      const { source, other } = await open(t, { ...ROOMY, maxPerOwner: 1 });
      const b = await other!();
      const [ra, rb] = await Promise.all([put(source, msg('race/a')), put(b, msg('race/b'))]);
      assert.equal([ra, rb].filter((r) => r === null).length, 1);
      assert.equal((await topics(source, 'race/#')).length, 1);
    });
  });
};
