/**
 * The OAuth provider's part of the Store contract (called from store-contract.ts inside its describe).
 */
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { DuplicateError } from '../src/store/store.js';
import type { OAuthTokenRecord, Store } from '../src/store/store.js';

const T0 = 1_700_000_000_000;

export function oauthStoreContract(fresh: (t: TestContext) => Promise<Store>): void {
  async function seeded(t: TestContext): Promise<Store> {
    const store = await fresh(t);
    await store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'h' });
    await store.createUser({ id: 'u_2', email: 'bob@example.com', passwordHash: 'h' });
    await store.createOAuthClient({ id: 'oc_1', name: 'Automations', redirectUris: ['https://a.example/cb', 'http://127.0.0.1:9/cb'], secretHash: 's'.repeat(64), createdAt: T0 });
    await store.createOAuthClient({ id: 'oc_2', name: 'Phone app', redirectUris: ['com.example.app:/cb'], secretHash: null, createdAt: T0 + 1 });
    return store;
  }

  const token = (hash: string, over: Partial<OAuthTokenRecord> = {}): OAuthTokenRecord => ({
    tokenHash: hash, kind: 'access', familyId: 'f_1', clientId: 'oc_1', userId: 'u_1', scope: 'devices:read',
    createdAt: T0, expiresAt: T0 + 3_600_000, rotatedAt: null, ...over,
  });

  const code = (hash: string, over: Record<string, unknown> = {}) => ({
    codeHash: hash, clientId: 'oc_1', userId: 'u_1', redirectUri: 'https://a.example/cb', scope: 'devices:read devices:control',
    codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', familyId: 'f_1', createdAt: T0, expiresAt: T0 + 60_000, usedAt: null, ...over,
  });

  describe('oauth', () => {
    it('a registered client is found by id with its exact redirect URIs; a public one has no secret', async (t) => {
      const store = await seeded(t);
      assert.deepEqual(await store.getOAuthClient('oc_1'), { id: 'oc_1', name: 'Automations', redirectUris: ['https://a.example/cb', 'http://127.0.0.1:9/cb'], secretHash: 's'.repeat(64), createdAt: T0 });
      assert.equal((await store.getOAuthClient('oc_2'))?.secretHash, null);
      assert.equal(await store.getOAuthClient('oc_missing'), undefined);
      assert.deepEqual((await store.listOAuthClients()).map((c) => c.id), ['oc_1', 'oc_2']);
    });

    it('a client id can be registered only once', async (t) => {
      const store = await seeded(t);
      await assert.rejects(store.createOAuthClient({ id: 'oc_1', name: 'x', redirectUris: [], secretHash: null, createdAt: T0 }), DuplicateError);
      assert.equal((await store.getOAuthClient('oc_1'))?.name, 'Automations');
    });

    it('a grant is saved once per user and client; saving again updates scope and keeps its creation time', async (t) => {
      const store = await seeded(t);
      await store.saveOAuthGrant({ userId: 'u_1', clientId: 'oc_1', scope: 'devices:read', createdAt: T0, updatedAt: T0 });
      await store.saveOAuthGrant({ userId: 'u_1', clientId: 'oc_1', scope: 'devices:read events:read', createdAt: T0 + 5, updatedAt: T0 + 5 });
      await store.saveOAuthGrant({ userId: 'u_1', clientId: 'oc_2', scope: 'events:read', createdAt: T0 + 6, updatedAt: T0 + 6 });
      assert.deepEqual(await store.getOAuthGrant('u_1', 'oc_1'), { userId: 'u_1', clientId: 'oc_1', scope: 'devices:read events:read', createdAt: T0, updatedAt: T0 + 5 });
      assert.deepEqual((await store.listOAuthGrantsByUser('u_1')).map((g) => g.clientId), ['oc_1', 'oc_2']);
      assert.deepEqual(await store.listOAuthGrantsByUser('u_2'), []);
      assert.equal(await store.getOAuthGrant('u_2', 'oc_1'), undefined);
    });

    it('a code is redeemed once: the second redemption stores nothing', async (t) => {
      const store = await seeded(t);
      await store.createOAuthCode(code('c1'));
      assert.deepEqual(await store.getOAuthCode('c1'), code('c1'));
      assert.equal(await store.redeemOAuthCode('c1', T0 + 10, [token('a1'), token('r1', { kind: 'refresh' })]), true);
      assert.equal((await store.getOAuthCode('c1'))?.usedAt, T0 + 10);
      assert.equal(await store.redeemOAuthCode('c1', T0 + 11, [token('a2')]), false);
      assert.equal(await store.getOAuthToken('a2'), undefined);
      assert.deepEqual(await store.getOAuthToken('a1'), token('a1'));
      assert.equal((await store.getOAuthToken('r1'))?.kind, 'refresh');
      assert.equal(await store.redeemOAuthCode('c_missing', T0, [token('a3')]), false);
      assert.equal(await store.getOAuthToken('a3'), undefined);
    });

    it('concurrent redemptions of one code: exactly one wins', async (t) => {
      const store = await seeded(t);
      await store.createOAuthCode(code('c1'));
      const results = await Promise.all([1, 2, 3, 4].map((i) => store.redeemOAuthCode('c1', T0 + i, [token(`a${i}`)])));
      assert.equal(results.filter(Boolean).length, 1);
      const stored = await Promise.all([1, 2, 3, 4].map((i) => store.getOAuthToken(`a${i}`)));
      assert.equal(stored.filter(Boolean).length, 1);
    });

    it('a code hash can be saved only once', async (t) => {
      const store = await seeded(t);
      await store.createOAuthCode(code('c1'));
      await assert.rejects(store.createOAuthCode(code('c1', { scope: 'events:read' })), DuplicateError);
    });

    it('a refresh token rotates once; an access token or a rotated one does not rotate', async (t) => {
      const store = await seeded(t);
      await store.createOAuthCode(code('c1'));
      await store.redeemOAuthCode('c1', T0, [token('a1'), token('r1', { kind: 'refresh' })]);
      assert.equal(await store.rotateOAuthRefreshToken('a1', T0 + 1, [token('x')]), false);
      assert.equal(await store.rotateOAuthRefreshToken('r1', T0 + 2, [token('a2'), token('r2', { kind: 'refresh' })]), true);
      assert.equal((await store.getOAuthToken('r1'))?.rotatedAt, T0 + 2);
      assert.equal(await store.rotateOAuthRefreshToken('r1', T0 + 3, [token('a3')]), false);
      assert.equal(await store.getOAuthToken('a3'), undefined);
      assert.equal(await store.getOAuthToken('x'), undefined);
      assert.equal((await store.getOAuthToken('r2'))?.rotatedAt, null);
      // A third generation: r1 (two rotations back) goes, r2 stays to detect its reuse.
      assert.equal(await store.rotateOAuthRefreshToken('r2', T0 + 4, [token('r3', { kind: 'refresh' })]), true);
      assert.equal(await store.getOAuthToken('r1'), undefined);
      assert.equal((await store.getOAuthToken('r2'))?.rotatedAt, T0 + 4);
      assert.ok(await store.getOAuthToken('a1'));
    });

    it('revoking a family deletes its tokens only and logs the revocation', async (t) => {
      const store = await seeded(t);
      await store.createOAuthCode(code('c1'));
      await store.createOAuthCode(code('c2', { familyId: 'f_2' }));
      await store.redeemOAuthCode('c1', T0, [token('a1'), token('r1', { kind: 'refresh' })]);
      await store.redeemOAuthCode('c2', T0, [token('a2', { familyId: 'f_2' })]);
      assert.deepEqual(await store.findOAuthFamily('f_1'), { clientId: 'oc_1', userId: 'u_1' });
      assert.equal(await store.revokeOAuthFamily({ familyId: 'f_1', clientId: 'oc_1', userId: 'u_1' }, T0 + 100), 2);
      assert.equal(await store.findOAuthFamily('f_1'), undefined);
      assert.equal(await store.findOAuthFamily('f_missing'), undefined);
      assert.equal(await store.getOAuthToken('a1'), undefined);
      assert.equal(await store.getOAuthToken('r1'), undefined);
      assert.ok(await store.getOAuthToken('a2'));
      assert.deepEqual(await store.listOAuthRevocationsSince(T0 + 100), [{ clientId: 'oc_1', userId: 'u_1', familyId: 'f_1', revokedAt: T0 + 100 }]);
      assert.deepEqual(await store.listOAuthRevocationsSince(T0 + 101), []);
    });

    it("deleting a grant removes that user's codes and tokens for the client, nobody else's, and logs it", async (t) => {
      const store = await seeded(t);
      await store.saveOAuthGrant({ userId: 'u_1', clientId: 'oc_1', scope: 'devices:read', createdAt: T0, updatedAt: T0 });
      await store.saveOAuthGrant({ userId: 'u_2', clientId: 'oc_1', scope: 'devices:read', createdAt: T0, updatedAt: T0 });
      await store.createOAuthCode(code('c1'));
      await store.createOAuthCode(code('c2', { userId: 'u_2', familyId: 'f_2' }));
      await store.redeemOAuthCode('c1', T0, [token('a1')]);
      await store.redeemOAuthCode('c2', T0, [token('a2', { userId: 'u_2', familyId: 'f_2' })]);
      await store.createOAuthCode(code('c3', { familyId: 'f_3' }));
      assert.equal(await store.deleteOAuthGrant('u_1', 'oc_1', T0 + 5), true);
      assert.equal(await store.getOAuthGrant('u_1', 'oc_1'), undefined);
      assert.equal(await store.getOAuthToken('a1'), undefined);
      assert.equal(await store.getOAuthCode('c3'), undefined);
      assert.ok(await store.getOAuthToken('a2'));
      assert.ok(await store.getOAuthGrant('u_2', 'oc_1'));
      assert.deepEqual(await store.listOAuthRevocationsSince(0), [{ clientId: 'oc_1', userId: 'u_1', familyId: null, revokedAt: T0 + 5 }]);
      assert.equal(await store.deleteOAuthGrant('u_1', 'oc_1', T0 + 6), false);
      assert.equal((await store.listOAuthRevocationsSince(0)).length, 1);
    });

    it('deleting a client removes its grants, codes and tokens and logs it; an unknown client is false', async (t) => {
      const store = await seeded(t);
      await store.saveOAuthGrant({ userId: 'u_1', clientId: 'oc_1', scope: 'devices:read', createdAt: T0, updatedAt: T0 });
      await store.createOAuthCode(code('c1'));
      await store.createOAuthCode(code('c2', { clientId: 'oc_2', familyId: 'f_2' }));
      await store.redeemOAuthCode('c1', T0, [token('a1')]);
      await store.redeemOAuthCode('c2', T0, [token('a2', { clientId: 'oc_2', familyId: 'f_2' })]);
      assert.equal(await store.deleteOAuthClient('oc_1', T0 + 7), true);
      assert.equal(await store.getOAuthClient('oc_1'), undefined);
      assert.equal(await store.getOAuthGrant('u_1', 'oc_1'), undefined);
      assert.equal(await store.getOAuthCode('c1'), undefined);
      assert.equal(await store.getOAuthToken('a1'), undefined);
      assert.ok(await store.getOAuthToken('a2'));
      assert.deepEqual(await store.listOAuthRevocationsSince(0), [{ clientId: 'oc_1', userId: null, familyId: null, revokedAt: T0 + 7 }]);
      assert.equal(await store.deleteOAuthClient('oc_1', T0 + 8), false);
    });

    it('codes and tokens must name an existing user and client; a failed redemption leaves the code unused', async (t) => {
      const store = await seeded(t);
      await assert.rejects(store.createOAuthCode(code('c8', { userId: 'u_missing' })));
      await assert.rejects(store.createOAuthCode(code('c9', { clientId: 'oc_missing' })));
      assert.equal(await store.getOAuthCode('c8'), undefined);
      await store.createOAuthCode(code('c1'));
      await assert.rejects(store.redeemOAuthCode('c1', T0, [token('a1'), token('a9', { userId: 'u_missing' })]));
      assert.equal(await store.getOAuthToken('a1'), undefined);
      assert.equal((await store.getOAuthCode('c1'))?.usedAt, null);
      assert.equal(await store.redeemOAuthCode('c1', T0, [token('a1')]), true);
    });

    it('clean-up removes expired codes and tokens and old revocations, and keeps the rest', async (t) => {
      const store = await seeded(t);
      await store.createOAuthCode(code('c_old', { expiresAt: T0 }));
      await store.createOAuthCode(code('c_new', { expiresAt: T0 + 1, familyId: 'f_2' }));
      await store.createOAuthCode(code('c_x', { familyId: 'f_3' }));
      await store.redeemOAuthCode('c_x', T0 - 10, [token('t_old', { expiresAt: T0 }), token('t_new', { expiresAt: T0 + 1 })]);
      await store.revokeOAuthFamily({ familyId: 'f_9', clientId: 'oc_1', userId: 'u_1' }, T0 - 1);
      await store.revokeOAuthFamily({ familyId: 'f_8', clientId: 'oc_1', userId: 'u_1' }, T0);
      assert.equal(await store.deleteExpiredOAuth(T0, T0), 3);
      assert.equal(await store.getOAuthCode('c_old'), undefined);
      assert.ok(await store.getOAuthCode('c_new'));
      assert.equal(await store.getOAuthToken('t_old'), undefined);
      assert.ok(await store.getOAuthToken('t_new'));
      assert.deepEqual((await store.listOAuthRevocationsSince(0)).map((r) => r.familyId), ['f_8']);
      assert.equal(await store.deleteExpiredOAuth(T0, T0), 0);
    });
  });
}
