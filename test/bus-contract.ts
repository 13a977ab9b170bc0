/**
 * The behaviour every Bus implementation must show (LocalBus now, RedisBus later), run by
 * test/contracts.test.ts: register `{ name: 'RedisBus', make: async (hooks) => new RedisBus(redisUrl, hooks.onError) }`.
 *
 * Written for asynchronous transports too. It relies on two properties only:
 * - messages from one bus instance reach a subscription in the order they were published;
 * - once a message published after some subscribe() calls has been delivered, those earlier
 *   subscriptions are in effect (true of Redis: SUBSCRIBE commands run in order on one connection).
 * `settle()` uses both to wait until everything published so far has been delivered, so "was not
 * delivered" can be asserted without sleeping.
 */
import { afterEach, beforeEach, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Bus } from '../src/core/bus.js';
import type { ContractSuite } from './support/contracts.js';

export interface BusContractHooks {
  /** Wire to the implementation's handler-error callback: the suite checks that errors reach it. */
  onError(err: unknown, topic: string): void;
}

type Received = [topic: string, payload: string];

let barriers = 0;

/** Resolves once everything published on `bus` before the call has been delivered. */
export async function settle(bus: Bus, timeoutMs = 5000): Promise<void> {
  // A `$` topic: no `#` or `+/…` subscription of a test sees it ([MQTT-4.7.2-1]).
  const topic = `$barrier/${++barriers}`;
  let done!: () => void;
  const arrived = new Promise<void>((resolve) => (done = resolve));
  const unsubscribe = bus.subscribe(topic, () => done());
  const deadline = Date.now() + timeoutMs;
  try {
    // Published again until it arrives: on an asynchronous bus the subscription may not be live yet.
    while (true) {
      bus.publish(topic, Buffer.alloc(0));
      const ok = await Promise.race([arrived.then(() => true), delay(10).then(() => false)]);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`bus did not settle within ${timeoutMs} ms`);
    }
  } finally {
    unsubscribe();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export const busContract: ContractSuite<Bus, [hooks: BusContractHooks]> = (implementation) => {
  let bus: Bus;
  let errors: [unknown, string][];

  /** Subscribes and records what arrives, payloads as latin1 so any byte survives the comparison. */
  function inbox(filter: string): Received[] {
    const got: Received[] = [];
    bus.subscribe(filter, (topic, payload) => got.push([topic, payload.toString('latin1')]));
    return got;
  }
  const send = (topic: string, text = topic): void => bus.publish(topic, Buffer.from(text, 'latin1'));

  beforeEach(async () => {
    errors = [];
    bus = await implementation.make({ onError: (err, topic) => errors.push([err, topic]) });
  });
  afterEach(async () => {
    await bus.close();
  });

  it('delivers a message to a subscriber of its topic with the payload bytes intact', async () => {
    const got: Buffer[] = [];
    bus.subscribe('devices/d1/notify', (topic, payload) => {
      assert.equal(topic, 'devices/d1/notify');
      got.push(Buffer.from(payload));
    });
    await settle(bus);
    const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    bus.publish('devices/d1/notify', everyByte);
    bus.publish('devices/d1/notify', Buffer.alloc(0));
    await settle(bus);
    assert.deepEqual(got, [everyByte, Buffer.alloc(0)]);
  });

  it('matches + and # wildcards, with # also matching the parent level', async () => {
    const plus = inbox('devices/+/notify');
    const hash = inbox('devices/#');
    const other = inbox('users/#');
    await settle(bus);
    for (const t of ['devices/d1/notify', 'devices/d1', 'devices', 'devices/d1/notify/x', 'devicesx']) send(t);
    await settle(bus);
    assert.deepEqual(plus.map(([t]) => t), ['devices/d1/notify']);
    assert.deepEqual(hash.map(([t]) => t), ['devices/d1/notify', 'devices/d1', 'devices', 'devices/d1/notify/x']);
    assert.deepEqual(other, []);
  });

  it('keeps $ topics away from subscriptions that start with a wildcard', async () => {
    const all = inbox('#');
    const plus = inbox('+/uptime');
    const sys = inbox('$SYS/#');
    await settle(bus);
    send('$SYS/uptime');
    await settle(bus);
    assert.deepEqual(all, []);
    assert.deepEqual(plus, []);
    assert.deepEqual(sys.map(([t]) => t), ['$SYS/uptime']);
  });

  it('treats empty levels and non-ASCII levels as ordinary levels', async () => {
    const empty = inbox('a/+/b');
    const unicode = inbox('caf\u00e9/+');
    await settle(bus);
    send('a//b');
    bus.publish('caf\u00e9/\u{1f600}', Buffer.from('x'));
    await settle(bus);
    assert.deepEqual(empty.map(([t]) => t), ['a//b']);
    assert.deepEqual(unicode.map(([t]) => t), ['caf\u00e9/\u{1f600}']);
  });

  it('gives every subscription its own copy, even the same handler under overlapping filters', async () => {
    const a = inbox('t/x');
    const b = inbox('t/x');
    let calls = 0;
    const handler = (): void => void calls++;
    bus.subscribe('t/+', handler);
    bus.subscribe('t/#', handler);
    await settle(bus);
    send('t/x');
    await settle(bus);
    assert.equal(a.length, 1);
    assert.equal(b.length, 1);
    assert.equal(calls, 2);
  });

  it('delivers messages in the order they were published', async () => {
    const got = inbox('#');
    await settle(bus);
    const sent: string[] = [];
    for (let i = 0; i < 200; i++) {
      const t = `order/${i % 7}`;
      send(t, String(i));
      sent.push(String(i));
    }
    await settle(bus);
    assert.deepEqual(got.map(([, p]) => p), sent);
  });

  it('stops delivering after unsubscribe, leaving other subscribers of the filter alone', async () => {
    const kept = inbox('u/1');
    const dropped: Received[] = [];
    const unsubscribe = bus.subscribe('u/1', (t, p) => dropped.push([t, p.toString('latin1')]));
    await settle(bus);
    send('u/1', 'before');
    await settle(bus);
    unsubscribe();
    unsubscribe(); // harmless twice
    send('u/1', 'after');
    await settle(bus);
    assert.deepEqual(dropped, [['u/1', 'before']]);
    assert.deepEqual(kept, [['u/1', 'before'], ['u/1', 'after']]);
  });

  it('never calls a handler after its unsubscribe returned, even during a delivery', async () => {
    // Each handler removes the other: whichever runs first, the second must not run.
    let calls = 0;
    const offA: () => void = bus.subscribe('race', () => {
      calls++;
      offB();
    });
    const offB: () => void = bus.subscribe('race', () => {
      calls++;
      offA();
    });
    await settle(bus);
    send('race');
    await settle(bus);
    assert.equal(calls, 1);
  });

  it('lets a handler subscribe, which takes effect for later messages only', async () => {
    const late: string[] = [];
    bus.subscribe('grow', (_t, p) => {
      if (p.toString() === 'first') bus.subscribe('grow', (_t2, p2) => late.push(p2.toString()));
    });
    await settle(bus);
    send('grow', 'first');
    await settle(bus);
    send('grow', 'second');
    await settle(bus);
    assert.deepEqual(late, ['second']);
  });

  it('delivers what a handler publishes, after the message that caused it', async () => {
    const got = inbox('chain/#');
    bus.subscribe('chain/ping', () => send('chain/pong'));
    await settle(bus);
    send('chain/ping');
    await settle(bus);
    await settle(bus); // the pong was published during the first settle
    assert.deepEqual(got.map(([t]) => t), ['chain/ping', 'chain/pong']);
  });

  it('keeps delivering to other subscribers when a handler throws, and reports the error', async () => {
    const before = inbox('boom');
    bus.subscribe('boom', () => {
      throw new Error('handler failed');
    });
    const after = inbox('boom');
    await settle(bus);
    send('boom');
    send('boom');
    await settle(bus);
    assert.equal(before.length, 2);
    assert.equal(after.length, 2);
    assert.equal(errors.length, 2);
    assert.equal((errors[0]![0] as Error).message, 'handler failed');
    assert.equal(errors[0]![1], 'boom');
  });

  it('rejects invalid topics and filters synchronously', () => {
    for (const bad of ['', 'a/+', 'a/#', 'a\u0000']) {
      assert.throws(() => bus.publish(bad, Buffer.alloc(0)), TypeError, JSON.stringify(bad));
    }
    for (const bad of ['', 'a/#/b', 'a+', 'a/b#']) {
      assert.throws(() => bus.subscribe(bad, () => {}), TypeError, JSON.stringify(bad));
    }
  });

  it('delivers nothing once closed, and closes twice without complaint', async () => {
    const got = inbox('late');
    await settle(bus);
    await bus.close();
    send('late');
    await delay(20);
    assert.deepEqual(got, []);
    assert.throws(() => bus.subscribe('late', () => {}));
    await bus.close();
  });
};
