import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from './message.js';
import { retainedBytes, RetainedStore, type RetainedEntry } from './retained.js';

function entry(topic: string, o: { owner?: string; bytes?: number; expiresAt?: number } = {}): RetainedEntry {
  const message: Message = { topic, payload: Buffer.from('x'), qos: 1, retain: true, properties: undefined, expiresAt: o.expiresAt, senderId: undefined };
  return { topic, message, qos: 1, expiresAt: o.expiresAt, owner: o.owner ?? 'device:d1', bytes: o.bytes ?? 10 };
}

const topics = (es: RetainedEntry[]): string[] => es.map((e) => e.topic);

describe('retained store', () => {
  it('matches filters in order, with # matching its parent and wildcards skipping $ topics', () => {
    const s = new RetainedStore();
    for (const t of ['a', 'a/b', 'a/c', 'a/b/c', '$SYS/x', 'b']) s.set(entry(t));
    assert.deepEqual(topics(s.match('a/#', 0)), ['a', 'a/b', 'a/b/c', 'a/c']);
    assert.deepEqual(topics(s.match('a/+', 0)), ['a/b', 'a/c']);
    assert.deepEqual(topics(s.match('#', 0)), ['a', 'a/b', 'a/b/c', 'a/c', 'b']);
    assert.deepEqual(topics(s.match('+', 0)), ['a', 'b']);
    assert.deepEqual(topics(s.match('$SYS/#', 0)), ['$SYS/x']);
    assert.deepEqual(topics(s.all()), ['a', 'a/b', 'a/b/c', 'a/c', '$SYS/x', 'b']);
  });

  it('matches and deletes a message 60,000 levels deep without overflowing the stack', () => {
    const s = new RetainedStore();
    const deep = `d/${'x/'.repeat(59_998)}end`;
    s.set(entry(deep));
    s.set(entry('d/ok'));
    assert.deepEqual(topics(s.match('d/#', 0)), [deep, 'd/ok']);
    assert.deepEqual(topics(s.match('#', 0)), [deep, 'd/ok']);
    assert.deepEqual(topics(s.match(`d/${'+/'.repeat(59_998)}+`, 0)), [deep]);
    assert.equal(s.all().length, 2);
    assert.equal(s.delete(deep)?.topic, deep);
    assert.deepEqual(topics(s.match('#', 0)), ['d/ok']);
  });

  it('keeps each owner\'s count and bytes through replace, delete and expiry', () => {
    const s = new RetainedStore();
    s.set(entry('a', { owner: 'device:d1', bytes: 10 }));
    s.set(entry('b', { owner: 'device:d1', bytes: 20, expiresAt: 100 }));
    s.set(entry('c', { owner: 'user:u1', bytes: 5 }));
    assert.deepEqual(s.usage.of('device:d1'), { count: 2, bytes: 30 });
    // Replaced by another owner: the charge moves.
    assert.equal(s.set(entry('a', { owner: 'user:u1', bytes: 7 }))?.owner, 'device:d1');
    assert.deepEqual(s.usage.of('device:d1'), { count: 1, bytes: 20 });
    assert.deepEqual(s.usage.of('user:u1'), { count: 2, bytes: 12 });
    // Expired: removed by the match that finds it.
    assert.deepEqual(topics(s.match('#', 200)), ['a', 'c']);
    assert.deepEqual(s.usage.of('device:d1'), { count: 0, bytes: 0 });
    s.delete('c');
    assert.deepEqual([s.size, s.usage.bytes], [1, 7]);
  });

  it('charges topic, payload and properties', () => {
    const m = { topic: 'ab', payload: Buffer.alloc(10), properties: { contentType: 'json', correlationData: Buffer.alloc(3), userProperties: { k: ['v1', 'v2'] } } };
    assert.equal(retainedBytes(m), 2 + 10 + 4 + 3 + 1 + 4);
  });
});
