import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { LocalBus } from './local-bus.js';

// What LocalBus promises beyond the Bus contract (test/bus-contract.ts).
describe('LocalBus', () => {
  it('has called every subscriber by the time publish() returns', () => {
    const bus = new LocalBus();
    let calls = 0;
    bus.subscribe('a/#', () => calls++);
    bus.subscribe('a/b', () => calls++);
    bus.publish('a/b', Buffer.from('x'));
    assert.equal(calls, 2);
  });

  it('holds no subscriptions once all are removed', () => {
    const bus = new LocalBus();
    const offs = Array.from({ length: 1000 }, (_, i) => bus.subscribe(`devices/d${i}/+`, () => {}));
    assert.equal(bus.subscriptionCount, 1000);
    for (const off of offs) off();
    assert.equal(bus.subscriptionCount, 0);
  });

  it('does not grow the stack when handlers publish to each other in a long chain', () => {
    const bus = new LocalBus();
    let hops = 0;
    bus.subscribe('hop', () => {
      if (++hops < 100_000) bus.publish('hop', Buffer.alloc(0));
    });
    bus.publish('hop', Buffer.alloc(0));
    assert.equal(hops, 100_000);
  });

  it('reports a throwing handler as a process warning when no onError is given', async () => {
    const bus = new LocalBus();
    bus.subscribe('w', () => {
      throw new Error('kaput');
    });
    const warned = once(process, 'warning');
    bus.publish('w', Buffer.alloc(0));
    const [warning] = (await warned) as [Error & { code?: string }];
    assert.equal(warning.code, 'CLOUDREST_BUS_HANDLER');
    assert.match(warning.message, /kaput/);
  });

  it('survives an onError callback that throws', () => {
    const bus = new LocalBus(() => {
      throw new Error('reporter broken');
    });
    let reached = false;
    bus.subscribe('x', () => {
      throw new Error('first');
    });
    bus.subscribe('x', () => (reached = true));
    bus.publish('x', Buffer.alloc(0));
    assert.equal(reached, true);
  });
});
