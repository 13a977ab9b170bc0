import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TunnelAdmission } from './tunnel-admission.js';

describe('tunnel admission', () => {
  it('expires a handshake at a fixed time from accept, whatever happens meanwhile, oldest first', () => {
    const a = new TunnelAdmission<string>({ handshakeTimeoutMs: 1000, maxHandshakes: 10, maxPerAddress: 0 });
    a.admit('a', '10.0.0.1', 0);
    a.admit('b', '10.0.0.1', 500);
    a.helloSeen('a'); // a HELLO being checked does not move the deadline either
    assert.deepEqual(a.expired(999), []);
    assert.deepEqual(a.expired(1000), ['a']);
    assert.deepEqual(a.expired(1500), ['a', 'b']);
    a.established('a');
    assert.deepEqual(a.expired(5000), ['b'], 'an established tunnel has no handshake deadline');
  });

  it('drops the oldest connection without a HELLO when the handshake slots are full, and refuses only when all are being checked', () => {
    const a = new TunnelAdmission<string>({ handshakeTimeoutMs: 1000, maxHandshakes: 3, maxPerAddress: 0 });
    for (const s of ['a', 'b', 'c']) assert.deepEqual(a.admit(s, '10.0.0.1', 0), { admitted: true });
    a.helloSeen('a');
    assert.deepEqual(a.admit('d', '10.0.0.2', 1), { admitted: true, evicted: 'b' });
    assert.equal(a.pending, 3);
    a.closed('b');
    a.helloSeen('c');
    a.helloSeen('d');
    assert.deepEqual(a.admit('e', '10.0.0.2', 2), { admitted: false, why: 'handshakes' });
    a.established('a');
    assert.deepEqual(a.admit('e', '10.0.0.2', 2), { admitted: true }, 'an established tunnel frees its handshake slot');
  });

  it('caps connections per address (IPv6 per /64), handshake or established, until they close', () => {
    const a = new TunnelAdmission<string>({ handshakeTimeoutMs: 1000, maxHandshakes: 100, maxPerAddress: 2 });
    assert.equal(a.admit('a', '2001:db8::1', 0).admitted, true);
    assert.equal(a.admit('b', '2001:db8::2', 0).admitted, true);
    a.established('a');
    assert.deepEqual(a.admit('c', '2001:db8::3', 0), { admitted: false, why: 'address' });
    assert.equal(a.admit('d', '2001:db8:0:1::1', 0).admitted, true, 'another /64');
    assert.equal(a.admit('e', '::ffff:10.0.0.1', 0).admitted, true);
    a.closed('a');
    assert.equal(a.admit('c', '2001:db8::3', 0).admitted, true);
    assert.equal(a.fromAddress('2001:db8::9'), 2);
    for (const s of ['b', 'c', 'd', 'e']) a.closed(s);
    assert.equal(a.fromAddress('2001:db8::9'), 0);
    assert.equal(a.pending, 0);
  });

  it('takes any number from one address when the per-address limit is 0', () => {
    const a = new TunnelAdmission<number>({ handshakeTimeoutMs: 1000, maxHandshakes: 10_000, maxPerAddress: 0 });
    for (let i = 0; i < 5000; i++) assert.equal(a.admit(i, '10.0.0.1', 0).admitted, true);
  });
});
