/**
 * The behaviour every Presence implementation must show (MapPresence now, a Redis one later): run it
 * with `presenceContract('RedisPresence', async () => { ...two nodes on one Redis... })`.
 *
 * A factory gives two nodes that share one presence table (as two hub processes share Redis), so the
 * rules between nodes are checked too: a take-over moves a device to the node that set it last, and
 * the node that lost it cannot clear the new entry. Each call must give a fresh, empty table.
 */
import { afterEach, beforeEach, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Presence } from '../src/core/presence.js';
import type { Implementation } from './support/contracts.js';

export interface PresenceNodes {
  /** Two nodes with different ids on one shared table. */
  a: Presence;
  b: Presence;
  close(): Promise<void>;
}

/** What an implementation whose nodes can die promises (Redis: heartbeat keys with a TTL). */
export interface PresenceProperties {
  /** How long after its last heartbeat a node counts as dead. */
  nodeTtlMs?: number;
  /** Makes node b die as a crashed process would: no more heartbeats, nothing let go. */
  crash?(nodes: PresenceNodes): Promise<void>;
}

export function presenceContract(implementation: Implementation<PresenceNodes, [], PresenceProperties>): void {
  const make = () => implementation.make();
  {
    let nodes: PresenceNodes;
    let a: Presence;
    let b: Presence;

    beforeEach(async () => {
      nodes = await make();
      ({ a, b } = nodes);
      assert.notEqual(a.nodeId, b.nodeId, 'the factory gives two distinct nodes');
    });
    afterEach(() => nodes.close());

    it('says a device no node holds is offline', async () => {
      assert.equal(await a.get('d_nobody'), undefined);
      assert.deepEqual(await b.getMany(['d_nobody', 'd_none']), [undefined, undefined]);
      assert.deepEqual(await a.getMany([]), []);
    });

    it('tells every node which node holds a device, and since when', async () => {
      await a.set('d_1', 1_700_000_000_000);
      assert.deepEqual(await a.get('d_1'), { nodeId: a.nodeId, since: 1_700_000_000_000 });
      assert.deepEqual(await b.get('d_1'), { nodeId: a.nodeId, since: 1_700_000_000_000 });
    });

    it('takes a device offline everywhere when its node lets it go', async () => {
      await a.set('d_1', 1000);
      await a.delete('d_1');
      assert.equal(await a.get('d_1'), undefined);
      assert.equal(await b.get('d_1'), undefined);
    });

    it('moves a device to the node it reconnected to, and the old node letting go does not take it offline', async () => {
      await a.set('d_1', 1000);
      await b.set('d_1', 2000);
      assert.deepEqual(await a.get('d_1'), { nodeId: b.nodeId, since: 2000 });
      await a.delete('d_1'); // the old node's tunnel closing after the take-over
      assert.deepEqual(await b.get('d_1'), { nodeId: b.nodeId, since: 2000 });
      await b.delete('d_1');
      assert.equal(await a.get('d_1'), undefined);
    });

    it('keeps the latest connection time when a device reconnects to the same node', async () => {
      await a.set('d_1', 1000);
      await a.set('d_1', 5000);
      assert.deepEqual(await b.get('d_1'), { nodeId: a.nodeId, since: 5000 });
    });

    it('answers many devices at once in the order asked, repeats included', async () => {
      await a.set('d_1', 1);
      await b.set('d_2', 2);
      const got = await b.getMany(['d_2', 'd_x', 'd_1', 'd_2']);
      assert.deepEqual(got, [{ nodeId: b.nodeId, since: 2 }, undefined, { nodeId: a.nodeId, since: 1 }, { nodeId: b.nodeId, since: 2 }]);
    });

    it('keeps devices apart: letting one go leaves the others online', async () => {
      await a.set('d_1', 1);
      await a.set('d_2', 2);
      await a.delete('d_1');
      assert.deepEqual(await a.getMany(['d_1', 'd_2']), [undefined, { nodeId: a.nodeId, since: 2 }]);
    });

    it('ignores letting go of a device that is not online', async () => {
      await a.delete('d_never');
      assert.equal(await b.get('d_never'), undefined);
    });

    it('moves a device back and forth between live nodes: the last set wins, and the node that lost it cannot clear it', async () => {
      await a.set('d_1', 1000);
      await b.set('d_1', 2000);
      assert.deepEqual(await a.get('d_1'), { nodeId: b.nodeId, since: 2000 });
      await a.set('d_1', 3000); // the device moved back: the last set wins, whichever node
      assert.deepEqual(await b.get('d_1'), { nodeId: a.nodeId, since: 3000 });
      await b.delete('d_1');
      assert.deepEqual(await b.get('d_1'), { nodeId: a.nodeId, since: 3000 });
    });

    const { crash, nodeTtlMs } = implementation.properties ?? {};
    if (crash !== undefined && nodeTtlMs !== undefined) {
      it("takes a dead node's devices offline everywhere once its TTL ran out, and leaves the others' alone", async () => {
        await a.set('d_a', 1);
        await b.set('d_b', 2);
        assert.deepEqual(await a.get('d_b'), { nodeId: b.nodeId, since: 2 });
        const crashed = Date.now();
        await crash(nodes);
        const deadline = crashed + nodeTtlMs + 5000;
        while ((await a.get('d_b')) !== undefined) {
          assert.ok(Date.now() < deadline, `d_b still online ${Date.now() - crashed} ms after its node died`);
          await new Promise((r) => setTimeout(r, 25));
        }
        assert.ok(Date.now() - crashed >= nodeTtlMs / 2, 'a live heartbeat kept the node alive until close to its TTL');
        assert.deepEqual(await a.getMany(['d_a', 'd_b']), [{ nodeId: a.nodeId, since: 1 }, undefined]);
      });
    }

    it('keeps device ids exact: no prefix or case folding', async () => {
      await a.set('Dev:1', 1);
      assert.equal(await a.get('dev:1'), undefined);
      assert.equal(await a.get('Dev:'), undefined);
      assert.deepEqual(await a.get('Dev:1'), { nodeId: a.nodeId, since: 1 });
    });
  }
}
