import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { TokenSigner } from '../../core/auth/token-signer.js';
import { createLogger } from '../log.js';
import { TokenChecker } from './token-check.js';
import { TRUST_FILE, TrustStore } from './trust-store.js';

const log = createLogger({ level: 'silent' });
const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'cloudrest-trust-'));
  dirs.push(d);
  return d;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const hash = (token: string): string => createHash('sha256').update(token).digest('hex');

describe('LAN trust store and token checks', () => {
  const hubDir = tmp();
  const signer = TokenSigner.open(hubDir);
  const HOUR = 3600_000;

  test('the hub key file is created once with mode 0600 and gives the same key next time', () => {
    assert.equal(statSync(join(hubDir, 'token-signing-key.pem')).mode & 0o777, 0o600);
    assert.deepEqual(TokenSigner.open(hubDir).publicKey, signer.publicKey);
  });

  test('keys, revocations and the owner survive a restart (written 0600), and junk on disk starts empty', async () => {
    const dir = tmp();
    const a = await TrustStore.open(dir, 100, log);
    const token = signer.issue('u_1', 'Owner@Example.com', Date.now() + HOUR);
    a.addKeys([signer.publicKey]);
    a.addRevoked([{ tokenHash: hash(token), expiresAt: Date.now() + HOUR }]);
    a.setOwnerEmail('owner@example.com');
    await a.flush();
    assert.equal(statSync(join(dir, TRUST_FILE)).mode & 0o777, 0o600);
    const b = await TrustStore.open(dir, 100, log);
    assert.equal(b.keyCount, 1);
    assert.ok(b.isRevoked(hash(token)));
    assert.equal(b.ownerEmail, 'owner@example.com');
    const verdict = new TokenChecker(b, () => b.ownerEmail).check(token);
    assert.deepEqual(verdict.ok ? 'ok' : verdict.reason, 'the token has been revoked');

    writeFileSync(join(dir, TRUST_FILE), '{"version":1,"keys":"nope","revoked":[["zz",1]]');
    const c = await TrustStore.open(dir, 100, log);
    assert.equal(c.keyCount, 0);
    assert.equal(c.revokedCount, 0);
  });

  test('past --lan-max-revoked the soonest-expiring revocations are forgotten and every token expiring by then is refused', async () => {
    const store = await TrustStore.open(tmp(), 16, log);
    store.addKeys([signer.publicKey]);
    store.setOwnerEmail('owner@example.com');
    const now = Date.now();
    const tokens = Array.from({ length: 20 }, (_, i) => signer.issue('u_1', 'owner@example.com', now + (i + 1) * HOUR));
    store.addRevoked(tokens.map((t, i) => ({ tokenHash: hash(t), expiresAt: now + (i + 1) * HOUR })));
    assert.equal(store.revokedCount, 16);
    assert.equal(store.horizon, now + 4 * HOUR);
    const checker = new TokenChecker(store, () => 'owner@example.com');
    for (const t of tokens) assert.equal(checker.check(t).ok, false, 'every revoked token stays refused');
    const soon = signer.issue('u_1', 'owner@example.com', now + 2 * HOUR);
    const later = signer.issue('u_1', 'owner@example.com', now + 30 * HOUR);
    assert.match(JSON.stringify(checker.check(soon)), /expires too soon/);
    assert.equal(checker.check(later).ok, true);
  });

  test('a token checked once is refused as soon as it is revoked or expires, and an owner change is seen at once', async () => {
    const store = await TrustStore.open(tmp(), 100, log);
    store.addKeys([signer.publicKey]);
    let owner: string | null = 'owner@example.com';
    const checker = new TokenChecker(store, () => owner);
    const t = signer.issue('u_1', 'owner@example.com', Date.now() + HOUR);
    assert.equal(checker.check(t).ok, true);
    assert.equal(checker.check(t, Date.now() + 2 * HOUR).ok, false, 'expired');
    owner = 'new-owner@example.com';
    assert.deepEqual(checker.check(t), { ok: false, code: 'CR_ERR_FORBIDDEN', reason: 'the token belongs to a user who does not own this device' });
    owner = 'owner@example.com';
    store.addRevoked([{ tokenHash: hash(t), expiresAt: Date.now() + HOUR }]);
    assert.equal(checker.check(t).ok, false);
  });

  test('without the hub\'s keys no token passes, and keys from a second hub are trusted beside the first', async () => {
    const store = await TrustStore.open(tmp(), 100, log);
    const checker = new TokenChecker(store, () => 'owner@example.com');
    const t = signer.issue('u_1', 'owner@example.com', Date.now() + HOUR);
    assert.match(JSON.stringify(checker.check(t)), /not received its hub's token keys/);
    const other = TokenSigner.open(tmp());
    store.addKeys([signer.publicKey]);
    store.addKeys([other.publicKey]);
    assert.equal(checker.check(t).ok, true);
    assert.equal(checker.check(other.issue('u_9', 'owner@example.com', Date.now() + HOUR)).ok, true);
  });
});
