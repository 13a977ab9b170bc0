import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MapPresence } from './presence.js';

// What MapPresence promises beyond the Presence contract (test/presence-contract.ts).
describe('MapPresence', () => {
  it('has updated its Map by the time set() and delete() return, before their promise is awaited', async () => {
    const p = new MapPresence('n_1');
    void p.set('d_1', 10);
    assert.deepEqual(await p.get('d_1'), { nodeId: 'n_1', since: 10 });
    void p.delete('d_1');
    assert.equal(await p.get('d_1'), undefined);
  });
});
