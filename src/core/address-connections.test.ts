import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AddressConnections } from './address-connections.js';

describe('AddressConnections', () => {
  it('counts connections per address up to the limit and refuses the next, counting refusals', () => {
    const c = new AddressConnections(2);
    const k = c.keyOf('10.0.0.1');
    assert.ok(c.acquire(k));
    assert.ok(c.acquire(k));
    assert.equal(c.acquire(k), false);
    assert.ok(c.acquire(c.keyOf('10.0.0.2')), 'another address');
    assert.equal(c.refusedTotal, 1);
    c.release(k);
    assert.ok(c.acquire(k), 'a closed connection frees its place');
  });

  it('counts an IPv6 /64 as one address, and IPv4-mapped addresses as IPv4', () => {
    const c = new AddressConnections(1);
    assert.ok(c.acquire(c.keyOf('2001:db8:1:2::1')));
    assert.equal(c.acquire(c.keyOf('2001:db8:1:2:ffff::9')), false);
    assert.ok(c.acquire(c.keyOf('2001:db8:1:3::1')));
    assert.ok(c.acquire(c.keyOf('192.0.2.7')));
    assert.equal(c.acquire(c.keyOf('::ffff:192.0.2.7')), false);
  });

  it('forgets an address once its last connection closed; 0 means no limit', () => {
    const c = new AddressConnections(0);
    const k = c.keyOf('10.0.0.1');
    for (let i = 0; i < 5000; i++) assert.ok(c.acquire(k));
    assert.equal(c.openFrom(k), 5000);
    for (let i = 0; i < 5000; i++) c.release(k);
    c.release(k);
    assert.equal(c.addresses, 0);
  });
});
