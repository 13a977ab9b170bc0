import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testPostgres } from '../../../test/support/services.js';
import { PostgresMqttPersistence } from './mqtt-persistence.js';

// What PostgresMqttPersistence promises beyond the MqttPersistence contract (test/mqtt-persistence-contract.ts).
describe('PostgresMqttPersistence', () => {
  it('two nodes on one database queue for one client at once without ever sharing a seq', async (t) => {
    const db = await testPostgres();
    t.after(() => db.drop());
    const [a, b] = await Promise.all([PostgresMqttPersistence.open(db.url), PostgresMqttPersistence.open(db.url)]);
    t.after(async () => {
      await a!.close();
      await b!.close();
    });
    const message = (node: string, i: number) => ({ topic: `from/${node}/${i}`, payload: Buffer.from([i & 0xff]), qos: 1 as const, retain: false });
    const seqs = await Promise.all(Array.from({ length: 400 }, (_, i) => (i % 2 === 0 ? a! : b!).enqueue('c1', [message(i % 2 === 0 ? 'a' : 'b', i)])));
    assert.equal(new Set(seqs.flat()).size, 400);
    const queued = await a!.queued('c1', 1000);
    assert.equal(queued.length, 400);
    // Each node's messages keep the order it queued them in.
    for (const node of ['a', 'b']) {
      const mine = queued.filter((m) => m.topic.startsWith(`from/${node}/`)).map((m) => Number(m.topic.split('/')[2]));
      assert.deepEqual(mine, [...mine].sort((x, y) => x - y));
    }
  });
});
