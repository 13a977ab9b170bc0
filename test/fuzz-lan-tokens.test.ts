// Property-based tests of what LAN access decodes from the network: the LAN frames' payloads
// (LAN_KEYS, REVOKED, INVALIDATE), signed access tokens (cr1.), and the agent's token check that a
// LAN client's bearer token reaches. Run count and seed: test/support/fuzz.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { createLogger } from '../src/agent/log.js';
import { TokenChecker } from '../src/agent/lan/token-check.js';
import { TrustStore } from '../src/agent/lan/trust-store.js';
import { TokenSigner } from '../src/core/auth/token-signer.js';
import { ProtocolError } from '../src/relay/protocol/frames.js';
import { MAX_LAN_KEYS, decodeInvalidate, decodeLanKeys, decodeRevoked, encodeInvalidate, encodeLanKeys, encodeRevoked } from '../src/relay/protocol/lan-frames.js';
import { MAX_SIGNED_TOKEN_CHARS, importPublicKey, parseSignedToken, signatureValid } from '../src/relay/protocol/signed-token.js';
import { FUZZ_TEST_OPTIONS, checkProperty, hostile, onlyThrows, record } from './support/fuzz.js';

const hex = (n: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
const keyArb = record({ kid: hex(16), ed25519: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a).toString('base64url')) });
const keysArb = fc.array(keyArb, { maxLength: MAX_LAN_KEYS });
const revokedArb = fc.array(record({ tokenHash: hex(64), expiresAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }) }), { maxLength: 6 });
const targetsArb = fc.array(fc.string({ unit: 'grapheme', maxLength: 30 }).map((s) => `/${s}`), { maxLength: 6 });

describe('LAN frame payloads under fuzzing', () => {
  test('LAN_KEYS, REVOKED and INVALIDATE round-trip', FUZZ_TEST_OPTIONS, () => {
    checkProperty([keysArb, revokedArb, targetsArb], (keys, revoked, targets) => {
      assert.deepEqual(decodeLanKeys(encodeLanKeys(keys)), keys);
      assert.deepEqual(decodeRevoked(encodeRevoked(revoked)), revoked);
      assert.deepEqual(decodeInvalidate(encodeInvalidate(targets)), targets);
    });
  });

  test('hostile LAN payloads are refused only with ProtocolError, and what passes is within bounds', FUZZ_TEST_OPTIONS, () => {
    checkProperty([hostile(keysArb.map(encodeLanKeys)), hostile(revokedArb.map(encodeRevoked)), hostile(targetsArb.map(encodeInvalidate))], (k, r, i) => {
      onlyThrows(ProtocolError, () => {
        const keys = decodeLanKeys(k);
        assert.ok(keys.length <= MAX_LAN_KEYS);
        // What the agent does next with them: a key that decodes imports as an Ed25519 key or throws.
        for (const key of keys) assert.equal(Buffer.from(key.ed25519, 'base64url').length, 32);
      });
      onlyThrows(ProtocolError, () => {
        const entries = decodeRevoked(r);
        assert.equal(r.length, 2 + entries.length * 40);
        for (const e of entries) assert.ok(/^[0-9a-f]{64}$/.test(e.tokenHash) && Number.isSafeInteger(e.expiresAt));
      });
      onlyThrows(ProtocolError, () => {
        for (const t of decodeInvalidate(i)) assert.ok(t.startsWith('/'));
      });
    }, 2);
  });
});

describe('signed tokens under fuzzing', () => {
  const dirs: string[] = [];
  const tmp = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'cloudrest-fuzz-'));
    dirs.push(d);
    return d;
  };
  const signer = TokenSigner.open(tmp());
  const key = importPublicKey(signer.publicKey);
  const OWNER = 'owner@example.com';
  let trust: TrustStore;
  let checker: TokenChecker;
  before(async () => {
    trust = await TrustStore.open(tmp(), 100, createLogger({ level: 'silent' }));
    trust.addKeys([signer.publicKey]);
    trust.setOwnerEmail(OWNER);
    checker = new TokenChecker(trust, () => trust.ownerEmail);
  });
  after(async () => {
    await trust.flush();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const HOUR = 3_600_000;
  const claimsArb = record({
    userId: fc.string({ unit: 'grapheme', maxLength: 20 }),
    email: fc.oneof(fc.constant(OWNER), fc.emailAddress({ size: 'small' })),
    expiresIn: fc.integer({ min: -HOUR, max: 1000 * HOUR }),
  });
  const issue = (c: { userId: string; email: string; expiresIn: number }, now: number): string => signer.issue(c.userId, c.email, now + c.expiresIn);
  const tokenArb = claimsArb.map((c) => issue(c, Date.now()));
  const asText = (b: Buffer): string => b.toString('latin1');

  test('a token the hub issued parses back to its claims and verifies', FUZZ_TEST_OPTIONS, () => {
    checkProperty([claimsArb], (c) => {
      const now = Date.now();
      const token = issue(c, now);
      const parsed = parseSignedToken(token);
      assert.ok(parsed, `did not parse: ${token}`);
      assert.deepEqual({ userId: parsed.claims.userId, email: parsed.claims.email, expiresAt: parsed.claims.expiresAt }, { userId: c.userId, email: c.email.toLowerCase(), expiresAt: now + c.expiresIn });
      assert.ok(signatureValid(parsed, key));
      const verdict = checker.check(token, now);
      assert.equal(verdict.ok, c.email.toLowerCase() === OWNER && c.expiresIn > 0, JSON.stringify(verdict));
    });
  });

  test('random and mutated tokens never throw, and none is accepted unless it says what the hub signed', FUZZ_TEST_OPTIONS, () => {
    const bytesOfToken = tokenArb.map((t) => Buffer.from(t, 'latin1'));
    const anyToken = fc.oneof(hostile(bytesOfToken, 1200).map(asText), fc.string({ maxLength: 200 }).map((s) => `cr1.${s}`), fc.string({ unit: 'binary', maxLength: 1100 }));
    checkProperty([anyToken], (token) => {
      const parsed = parseSignedToken(token);
      if (parsed) {
        assert.ok(token.length <= MAX_SIGNED_TOKEN_CHARS);
        assert.equal(parsed.signature.length, 64);
      }
      const verdict = checker.check(token);
      if (verdict.ok) {
        // Only a genuine token passes: what it carries is what the hub signed (a mutation that only
        // touched unused bits of the last base64url digit of the signature changes nothing signed).
        assert.ok(parsed && signatureValid(parsed, key));
        assert.equal(parsed.claims.email, OWNER);
      } else {
        assert.ok(verdict.code === 'CR_ERR_UNAUTHORIZED' || verdict.code === 'CR_ERR_FORBIDDEN');
      }
    }, 2);
  });

  test('a token with any byte of its claims changed is refused', FUZZ_TEST_OPTIONS, () => {
    const arb = fc.tuple(claimsArb.filter((c) => c.expiresIn > 0).map((c) => ({ ...c, email: OWNER })), fc.nat(), fc.integer({ min: 1, max: 255 }));
    checkProperty([arb], ([c, at, delta]) => {
      const token = issue(c, Date.now());
      const dot = token.lastIndexOf('.');
      // A position in "cr1.<claims>" (the signed text), changed to another byte.
      const b = Buffer.from(token, 'latin1');
      const i = at % dot;
      b[i] = (b[i]! + delta) & 0xff;
      assert.equal(checker.check(b.toString('latin1')).ok, false);
    });
  });

  test('a genuine token with any bit of its signature flipped is refused', FUZZ_TEST_OPTIONS, () => {
    checkProperty([tokenArb, fc.integer({ min: 0, max: 64 * 8 - 1 })], (token, bit) => {
      const dot = token.lastIndexOf('.');
      const sig = Buffer.from(token.slice(dot + 1), 'base64url');
      sig[bit >> 3] = sig[bit >> 3]! ^ (1 << (bit & 7));
      const forged = `${token.slice(0, dot + 1)}${sig.toString('base64url')}`;
      const parsed = parseSignedToken(forged);
      assert.ok(parsed, 'still a well-formed token');
      assert.equal(signatureValid(parsed, key), false);
      assert.equal(checker.check(forged).ok, false);
    });
  });
});
