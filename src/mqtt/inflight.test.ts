import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InflightTable } from './inflight.js';

interface Entry {
  packetId: number;
  label: string;
}

/** A small deterministic generator (xorshift32), so a failure can be replayed. */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

describe('MQTT inflight table', () => {
  it('answers like an insertion-ordered Map through 200,000 random sends, acknowledgements and lookups', () => {
    for (const seed of [1, 42, 2024]) {
      const rnd = random(seed);
      const table = new InflightTable<Entry>();
      const model = new Map<number, Entry>();
      let nextId = 1;
      for (let step = 0; step < 200_000; step++) {
        const r = rnd();
        // Windows from a handful to a few thousand: the table grows along.
        const window = step < 100_000 ? 20 : 3_000;
        if (r < 0.45 && model.size < window) {
          // The outbox's way: the next id in sequence that is not in use, wrapping at 65,535.
          let id = nextId;
          while (model.has(id)) id = id === 65_535 ? 1 : id + 1;
          nextId = id === 65_535 ? 1 : id + 1;
          const e = { packetId: id, label: `s${step}` };
          table.add(e);
          model.set(id, e);
        } else if (r < 0.5 && model.size < window) {
          // A restored session brings ids in any order.
          const id = 1 + Math.floor(rnd() * 65_535);
          if (model.has(id)) continue;
          const e = { packetId: id, label: `r${step}` };
          table.add(e);
          model.set(id, e);
        } else if (r < 0.9 && model.size > 0) {
          // Acknowledgements arrive mostly in order, sometimes not.
          const ids = [...model.keys()];
          const id = rnd() < 0.8 ? ids[0]! : ids[Math.floor(rnd() * ids.length)]!;
          assert.equal(table.delete(id), true);
          model.delete(id);
        } else {
          const id = 1 + Math.floor(rnd() * 65_535);
          assert.equal(table.get(id), model.get(id), `seed ${seed} step ${step}: get(${id})`);
          assert.equal(table.delete(id), model.delete(id), `seed ${seed} step ${step}: delete(${id})`);
        }
        assert.equal(table.size, model.size);
      }
      assert.deepEqual(table.inOrder(), [...model.values()], `seed ${seed}: the entries in the order they were added`);
      for (const [id, e] of model) assert.equal(table.get(id), e);
    }
  });

  it('finds nothing for an id that was never added or is already acknowledged', () => {
    const table = new InflightTable<Entry>();
    assert.equal(table.get(7), undefined);
    assert.equal(table.delete(7), false);
    // 9 and 17 share a home slot with 1 in the smallest table (8 slots).
    for (const id of [1, 9, 17]) table.add({ packetId: id, label: String(id) });
    assert.equal(table.delete(9), true);
    assert.equal(table.get(9), undefined);
    assert.equal(table.has(17), true, 'an entry behind a deleted one in its run is still found');
    assert.deepEqual(table.inOrder().map((e) => e.packetId), [1, 17]);
  });
});
