import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HubError } from '../errors.js';
import { StreamSlots } from './stream-slots.js';

function code(r: (() => void) | HubError): string {
  return typeof r === 'function' ? 'ok' : r.code;
}

describe('event stream slots', () => {
  it('hold one user to their limit while another user still gets a stream', () => {
    const slots = new StreamSlots({ max: 10, maxPerUser: 3 });
    const mine = [slots.acquire('u1'), slots.acquire('u1'), slots.acquire('u1')];
    assert.deepEqual(mine.map(code), ['ok', 'ok', 'ok']);
    assert.equal(code(slots.acquire('u1')), 'CR_ERR_TOO_MANY_STREAMS');
    assert.equal(code(slots.acquire('u2')), 'ok');
    (mine[0] as () => void)();
    (mine[0] as () => void)(); // releasing twice gives back one slot
    assert.equal(slots.openFor('u1'), 2);
    assert.equal(code(slots.acquire('u1')), 'ok');
    assert.equal(code(slots.acquire('u1')), 'CR_ERR_TOO_MANY_STREAMS');
  });

  it('refuse past the hub-wide limit with CR_ERR_TOO_MANY_REQUESTS, and free slots on release', () => {
    const slots = new StreamSlots({ max: 2, maxPerUser: 0 });
    const a = slots.acquire('u1');
    slots.acquire('u2');
    assert.equal(code(slots.acquire('u3')), 'CR_ERR_TOO_MANY_REQUESTS');
    (a as () => void)();
    assert.equal(slots.open, 1);
    assert.equal(slots.openFor('u1'), 0);
    assert.equal(code(slots.acquire('u3')), 'ok');
  });
});
