import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeTokensRevoked, encodeTokensRevoked } from './token-events.js';

const H1 = 'a'.repeat(64);
const H2 = 'b'.repeat(64);

test('a revocation event round-trips, and its other accepted shape reads the same', () => {
  const e = { userId: 'u_1', tokens: [{ tokenHash: H1, expiresAt: 5 }, { tokenHash: H2, expiresAt: 6 }] };
  assert.deepEqual(decodeTokensRevoked(encodeTokensRevoked(e)), e);
  assert.deepEqual(decodeTokensRevoked(Buffer.from(JSON.stringify({ userId: 'u_1', tokenHashes: [H1, H2], expiresAt: [5, 6] }))), e);
  assert.deepEqual(decodeTokensRevoked(Buffer.from(JSON.stringify({ userId: 'u_1', tokenHashes: [H1], expiresAt: 5 }))), { userId: 'u_1', tokens: [{ tokenHash: H1, expiresAt: 5 }] });
});

test('malformed events and entries are dropped, never trusted', () => {
  assert.equal(decodeTokensRevoked(Buffer.from('not json')), undefined);
  assert.equal(decodeTokensRevoked(Buffer.from('{"tokens":[]}')), undefined, 'no user');
  assert.equal(decodeTokensRevoked(Buffer.from('{"userId":"u_1"}')), undefined, 'no tokens');
  const mixed = { userId: 'u_1', tokens: [{ tokenHash: 'XYZ', expiresAt: 5 }, { tokenHash: H1, expiresAt: '5' }, { tokenHash: H2, expiresAt: 7 }, null] };
  assert.deepEqual(decodeTokensRevoked(Buffer.from(JSON.stringify(mixed))), { userId: 'u_1', tokens: [{ tokenHash: H2, expiresAt: 7 }] });
});
