import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sha256Hex } from './secrets.js';
import { MAX_TOKENS_PER_EVENT, decodeRevocation, encodeRevocation, encodeRevocations } from './token-revocation.js';

describe('token revocation events', () => {
  it('carry the user, each token hash and its expiry, byte for byte as documented', () => {
    const tokenHash = sha256Hex('a token');
    const b = encodeRevocation({ userId: 'u_1', tokens: [{ tokenHash, expiresAt: 1_800_000_000_123 }] });
    const expected = Buffer.concat([
      Buffer.from([1, 3]), Buffer.from('u_1'), Buffer.from([0, 1]),
      Buffer.from(tokenHash, 'hex'), Buffer.from('000001a3185c507b', 'hex'),
    ]);
    assert.deepEqual(b, expected);
    assert.equal(b.length, 4 + 3 + 40);
    assert.deepEqual(decodeRevocation(b), { userId: 'u_1', tokens: [{ tokenHash, expiresAt: 1_800_000_000_123 }] });
  });

  it('round-trip many tokens and a non-ASCII user id', () => {
    const tokens = Array.from({ length: 300 }, (_, i) => ({ tokenHash: sha256Hex(`t${i}`), expiresAt: i * 1000 }));
    const r = { userId: 'u_é', tokens };
    assert.deepEqual(decodeRevocation(encodeRevocation(r)), r);
  });

  it('are split when a revocation has more tokens than one event holds', () => {
    const tokens = Array.from({ length: MAX_TOKENS_PER_EVENT + 2 }, (_, i) => ({ tokenHash: i.toString(16).padStart(64, '0'), expiresAt: 1 }));
    const events = encodeRevocations({ userId: 'u_1', tokens });
    assert.equal(events.length, 2);
    assert.equal(decodeRevocation(events[0]!).tokens.length, MAX_TOKENS_PER_EVENT);
    assert.deepEqual(decodeRevocation(events[1]!).tokens, tokens.slice(MAX_TOKENS_PER_EVENT));
  });

  it('refuse to encode what cannot be carried', () => {
    const ok = { tokenHash: sha256Hex('x'), expiresAt: 1 };
    assert.throws(() => encodeRevocation({ userId: '', tokens: [ok] }), RangeError);
    assert.throws(() => encodeRevocation({ userId: 'x'.repeat(256), tokens: [ok] }), RangeError);
    assert.throws(() => encodeRevocation({ userId: 'u', tokens: [] }), RangeError);
    assert.throws(() => encodeRevocation({ userId: 'u', tokens: [{ tokenHash: 'ABC', expiresAt: 1 }] }), RangeError);
    assert.throws(() => encodeRevocation({ userId: 'u', tokens: [{ tokenHash: ok.tokenHash.toUpperCase(), expiresAt: 1 }] }), RangeError);
    assert.throws(() => encodeRevocation({ userId: 'u', tokens: [{ tokenHash: ok.tokenHash, expiresAt: -1 }] }), RangeError);
  });

  it('refuse to decode truncated, padded or foreign payloads', () => {
    const good = encodeRevocation({ userId: 'u_1', tokens: [{ tokenHash: sha256Hex('x'), expiresAt: 5 }] });
    assert.throws(() => decodeRevocation(good.subarray(0, good.length - 1)), RangeError);
    assert.throws(() => decodeRevocation(Buffer.concat([good, Buffer.from([0])])), RangeError);
    assert.throws(() => decodeRevocation(Buffer.from([2, ...good.subarray(1)])), RangeError);
    assert.throws(() => decodeRevocation(Buffer.from([1, 0, 0, 0])), RangeError);
    assert.throws(() => decodeRevocation(Buffer.from('{"json":true}')), RangeError);
    const tooLate = Buffer.from(good);
    tooLate.writeBigUInt64BE(2n ** 63n, good.length - 8);
    assert.throws(() => decodeRevocation(tooLate), RangeError);
  });
});
