import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { testRedis, type TestRedis } from '../../../test/support/services.js';
import { decodeBatchHeader, decodeConfirmation, eachFramed, encodeBatchHeader, encodeConfirmation, framed } from './forward-batch.js';
import { ConfirmSender, PendingBatches } from './forward-confirmer.js';
import { ForwardSender } from './forward-sender.js';

describe('forward batches and their confirmations', () => {
  it('reads back a batch header, its frames and a confirmation; refuses a truncated one or another version', () => {
    const header = encodeBatchHeader({ from: 'node-a', epoch: 0xfedcba98, id: 7 });
    const batch = Buffer.concat([header, framed(Buffer.from('one')), framed(Buffer.from('two'))]);
    const h = decodeBatchHeader(batch);
    assert.deepEqual({ from: h.from, epoch: h.epoch, id: h.id }, { from: 'node-a', epoch: 0xfedcba98, id: 7 });
    const frames: string[] = [];
    eachFramed(batch, (f) => frames.push(f.toString()), h.framesAt);
    assert.deepEqual(frames, ['one', 'two']);
    assert.throws(() => eachFramed(batch.subarray(0, batch.length - 1), () => undefined, h.framesAt), RangeError);
    assert.throws(() => decodeBatchHeader(header.subarray(0, header.length - 1)), RangeError);
    // A node of the release before confirmations sends frames with no header: version byte 0 (a length).
    assert.throws(() => decodeBatchHeader(framed(Buffer.from('old'))), RangeError);
    assert.deepEqual(decodeConfirmation(encodeConfirmation(5, [1, 2, 0xffffffff])), { epoch: 5, ids: [1, 2, 0xffffffff] });
    assert.throws(() => decodeConfirmation(encodeConfirmation(5, [1]).subarray(0, 7)), RangeError);
  });

  it('a pending batch succeeds once confirmed, fails at its timeout (counted), and ignores a confirmation meant for a previous run', async () => {
    const failed: Array<[string, number]> = [];
    const pending = new PendingBatches(200, (node, n) => failed.push([node, n]));
    const a = pending.open('b', 3);
    const b = pending.open('b', 2);
    pending.confirmed(pending.epoch + 1, [a.id, b.id]);
    pending.confirmed(pending.epoch, [a.id]);
    assert.equal(await a.confirmed, true);
    assert.equal(await b.confirmed, false, 'unconfirmed in time');
    assert.deepEqual(failed, [['b', 2]]);
    pending.confirmed(pending.epoch, [b.id]);
    assert.equal(pending.size, 0);
    const c = pending.open('c', 1);
    pending.failAll('closing');
    assert.equal(await c.confirmed, false);
  });

  describe('over Redis', () => {
    let redis: TestRedis;
    const conns: Redis[] = [];
    const connect = async () => {
      const r = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 2 });
      conns.push(r);
      await r.connect();
      return r;
    };
    before(async () => {
      redis = await testRedis();
    });
    after(async () => {
      for (const r of conns) r.disconnect();
      await redis?.drop();
    });

    it('a QoS 1 sender learns of success only once the receiving node stored the batch; a batch nobody receives fails at once', async () => {
      const p = redis.keyPrefix;
      const [cmdA, cmdB, subA, subB] = await Promise.all([connect(), connect(), connect(), connect()]);
      const pending = new PendingBatches(10_000, () => undefined);
      const sender = new ForwardSender(cmdA, 'a', pending, (n) => `${p}fwd:${n}`, () => undefined);
      const confirms = new ConfirmSender(cmdB, (n) => `${p}ack:${n}`, () => undefined);
      // Node B: each frame's "store" finishes when the test says so.
      const stores: Array<() => void> = [];
      const got: string[] = [];
      await subB.subscribe(`${p}fwd:b`);
      subB.on('messageBuffer', (_c: Buffer, payload: Buffer) => {
        confirms.receive(payload, (frame) => {
          got.push(frame.toString());
          return new Promise<void>((r) => stores.push(r));
        });
      });
      await subA.subscribe(`${p}ack:a`);
      subA.on('messageBuffer', (_c: Buffer, payload: Buffer) => {
        const c = decodeConfirmation(payload);
        pending.confirmed(c.epoch, c.ids);
      });

      let settled: boolean | undefined;
      // Two messages of one turn: one batch, one confirmation.
      const first = sender.send('b', framed(Buffer.from('m1')), true);
      const second = sender.send('b', framed(Buffer.from('m2')), true);
      assert.equal(first, second);
      void first.then((ok) => (settled = ok));
      const deadline = Date.now() + 10_000;
      while (stores.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(got, ['m1', 'm2']);
      stores[0]!();
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(settled, undefined, 'not confirmed while one of its messages is not stored');
      stores[1]!();
      assert.equal(await first, true);

      const started = Date.now();
      assert.equal(await sender.send('nobody', framed(Buffer.from('m3')), true), false);
      assert.ok(Date.now() - started < 5_000, 'failed on Redis\'s answer, not at the 10 s timeout');
      assert.equal(pending.size, 0);
    });
  });
});
