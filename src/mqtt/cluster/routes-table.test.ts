import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeForward, decodeRetained, encodeForward, encodeForwardFramed, encodeRetained } from './forward-codec.js';
import { decodeRouteFrame, encodeRouteFrame } from './routes-codec.js';
import { RouteTable } from './routes-table.js';
import type { Message } from '../message.js';

describe('cluster route table', () => {
  it('sends a message only to the nodes with a matching filter, once per node', () => {
    const t = new RouteTable();
    t.add('b', 'sensors/+/temp');
    t.add('b', 'sensors/#');
    t.add('c', 'other/#');
    assert.deepEqual([...t.plan('sensors/1/temp', undefined).nodes.keys()], ['b']);
    assert.deepEqual([...t.plan('nothing', undefined).nodes.keys()], []);
    t.remove('b', 'sensors/#');
    assert.deepEqual([...t.plan('sensors/1/temp', undefined).nodes.keys()], ['b']);
    t.remove('b', 'sensors/+/temp');
    assert.deepEqual([...t.plan('sensors/1/temp', undefined).nodes.keys()], []);
  });

  it('takes turns between the nodes holding a shared group, this node included', () => {
    const t = new RouteTable();
    t.add('b', '$share/g/jobs/#');
    t.add('c', '$share/g/jobs/#');
    const picks: string[] = [];
    for (let i = 0; i < 6; i++) {
      const p = t.plan('jobs/1', ['$share/g/jobs/#']);
      const remote = [...p.nodes.entries()].filter(([, groups]) => groups.includes('$share/g/jobs/#'));
      assert.ok(remote.length <= 1);
      if (remote.length === 1) assert.ok(p.notHere?.has('$share/g/jobs/#'));
      picks.push(remote.length === 1 ? remote[0]![0] : 'here');
    }
    assert.deepEqual(picks.sort(), ['b', 'b', 'c', 'c', 'here', 'here']);
  });

  it('forgets a dead node and replaces a node on a full read', () => {
    const t = new RouteTable();
    t.add('b', 'a/#');
    t.add('b', 'x');
    t.replace('b', ['x', 'y']);
    assert.deepEqual([...t.plan('a/1', undefined).nodes.keys()], []);
    assert.deepEqual([...t.plan('y', undefined).nodes.keys()], ['b']);
    t.dropNode('b');
    assert.equal(t.size, 0);
    assert.deepEqual(t.nodeIds(), []);
  });

  it('ignores a key no client could subscribe with', () => {
    const t = new RouteTable();
    t.add('b', 'a/#/b');
    assert.equal(t.size, 0);
  });
});

describe('cluster frames', () => {
  it('round-trips route deltas', () => {
    const b = encodeRouteFrame('node-1', [{ add: true, key: 'a/+' }, { add: false, key: '$share/g/ü/#' }]);
    assert.deepEqual(decodeRouteFrame(b), { nodeId: 'node-1', deltas: [{ add: true, key: 'a/+' }, { add: false, key: '$share/g/ü/#' }] });
    assert.throws(() => decodeRouteFrame(b.subarray(0, b.length - 1)), RangeError);
  });

  it('round-trips a forwarded message with its properties, expiry and groups', () => {
    const m: Message = {
      topic: 't/ü', payload: Buffer.from([0, 1, 2]), qos: 2, retain: true, expiresAt: 10_000, senderId: 'x',
      properties: { payloadFormatIndicator: true, contentType: 'text/plain', responseTopic: 'r', correlationData: Buffer.from('c'), userProperties: { a: '1', b: ['2', '3'] } },
    };
    const f = decodeForward(encodeForward(m, ['$share/g/t/#'], 4000), 5000);
    assert.deepEqual(f.groups, new Set(['$share/g/t/#']));
    assert.equal(f.groupsOnly, false);
    assert.equal(decodeForward(encodeForward(m, ['$share/g/t/#'], 4000, true), 5000).groupsOnly, true, 'a shared redelivery: for the group only');
    assert.equal(f.message.topic, 't/ü');
    assert.deepEqual(f.message.payload, m.payload);
    assert.equal(f.message.qos, 2);
    assert.equal(f.message.retain, true);
    assert.equal(f.message.expiresAt, 11_000);
    assert.deepEqual({ ...f.message.properties, correlationData: f.message.properties?.correlationData?.toString() }, { ...m.properties, correlationData: 'c' });
    const plain = decodeForward(encodeForward({ ...m, properties: undefined, expiresAt: undefined, qos: 0, retain: false }, undefined, 0), 0);
    assert.equal(plain.groups, undefined);
    assert.equal(plain.message.properties, undefined);
    assert.equal(plain.message.expiresAt, undefined);
    assert.throws(() => decodeForward(encodeForward(m, undefined, 0).subarray(0, 5), 0), RangeError);
  });

  it('frames a forward with its length, the same bytes on the fast path as on the general one', () => {
    const m: Message = { topic: 'a/b', payload: Buffer.from('xyz'), qos: 1, retain: false, properties: undefined, expiresAt: 9000, senderId: undefined };
    const framed = encodeForwardFramed(m, undefined, 1000);
    assert.equal(framed.readUInt32BE(0), framed.length - 4);
    assert.deepEqual(framed.subarray(4), encodeForward(m, undefined, 1000));
    const withGroup = encodeForwardFramed(m, ['$share/g/a/#'], 1000);
    assert.deepEqual(decodeForward(withGroup.subarray(4), 1000).groups, new Set(['$share/g/a/#']));
    assert.equal(decodeForward(framed.subarray(4), 2000).message.expiresAt, 10_000);
  });

  it('round-trips a retained message with its owner and charged bytes', () => {
    const m: Message = { topic: 's', payload: Buffer.from('on'), qos: 1, retain: true, properties: undefined, expiresAt: undefined, senderId: undefined };
    const r = decodeRetained(encodeRetained(m, 'user:1', 42, 0), 0);
    assert.equal(r.owner, 'user:1');
    assert.equal(r.bytes, 42);
    assert.equal(r.message.payload.toString(), 'on');
  });

  it('holds a dead node\'s routes for its take-over (messages still go there, and fail) until the hold passes or the node is dropped', () => {
    const t = new RouteTable();
    t.add('b', 'plant/#');
    t.add('c', 'plant/#');
    t.dropDead(new Set(['c']), 60_000, 1_000);
    assert.deepEqual([...t.plan('plant/1', undefined).nodes.keys()].sort(), ['b', 'c'], 'held');
    t.dropDead(new Set(['c']), 60_000, 60_999);
    assert.ok(t.plan('plant/1', undefined).nodes.has('b'));
    t.dropDead(new Set(['c']), 60_000, 61_000);
    assert.deepEqual([...t.plan('plant/1', undefined).nodes.keys()], ['c'], 'dropped once the hold passed');
    t.add('b', 'plant/#');
    t.dropDead(new Set(['c']), 60_000, 70_000);
    t.dropNode('b');
    assert.deepEqual([...t.plan('plant/1', undefined).nodes.keys()], ['c'], 'dropped at its take-over');
    t.dropDead(new Set(), 0, 70_000);
    assert.equal(t.size, 0, 'without a hold, at once');
  });
});
