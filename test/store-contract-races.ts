/**
 * The Store's atomic operations under concurrency (called from store-contract.ts inside its describe).
 * SQLite serialises every statement on one connection; PostgreSQL runs them on a pool, as several
 * hub nodes do: each case here starts its contenders at once and checks that the outcome is one that
 * running them one at a time could give.
 */
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { DuplicateError } from '../src/store/store.js';
import type { OAuthTokenRecord, Store } from '../src/store/store.js';

const CONTENDERS = 20;
const NOW = 1_700_000_000_000;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

export function storeRaceContract(freshStore: (t: TestContext) => Promise<Store>): void {
  /** A store whose connections are open already: else the first contender may finish while the others still connect. */
  async function fresh(t: TestContext): Promise<Store> {
    const store = await freshStore(t);
    await Promise.all(range(CONTENDERS).map(() => store.listUsers()));
    return store;
  }

  describe('under concurrency', () => {
    it('twenty concurrent confirmations of one link create one user; the others are told it was used', async (t) => {
      const store = await fresh(t);
      await store.createConfirmation({ idHash: 'c1', email: 'new@example.com', deviceId: null, createdAt: NOW, expiresAt: NOW + 60_000 });
      const results = await Promise.all(range(CONTENDERS).map((i) => store.confirmEmail('c1', { id: `u_${i}`, passwordHash: 'h' }, NOW)));
      assert.equal(results.filter((r) => r.status === 'confirmed').length, 1);
      assert.deepEqual(new Set(results.map((r) => r.status)), new Set(['confirmed', 'used']));
      assert.equal((await store.listUsers()).length, 1);
    });

    it('twenty concurrent sign-ups with one email: one user, every other attempt a DuplicateError', async (t) => {
      const store = await fresh(t);
      const results = await Promise.allSettled(range(CONTENDERS).map((i) => store.createUser({ id: `u_${i}`, email: 'Ada@example.com', passwordHash: 'h' })));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof DuplicateError, String(r.reason));
      assert.equal((await store.listUsers()).length, 1);
    });

    it('concurrent accepts of one claim move the device once', async (t) => {
      const store = await fresh(t);
      await store.createUser({ id: 'u_ada', email: 'ada@example.com', passwordHash: 'h' });
      await store.createDevice({ id: 'd_1', name: 'D', email: null, secretHash: 'h' });
      await store.updateDeviceInfo('d_1', { email: 'ada@example.com' }, 1);
      const results = await Promise.all(range(CONTENDERS).map((i) => store.acceptDeviceClaim('d_1', 'ada@example.com', 10 + i)));
      assert.equal(results.filter((d) => d !== undefined).length, 1);
      assert.equal((await store.getDevice('d_1'))?.email, 'ada@example.com');
      assert.equal(await store.getDeviceClaim('d_1'), undefined);
    });

    it("concurrent reports of one device leave its info and its claim from the same report", async (t) => {
      const store = await fresh(t);
      for (const i of range(CONTENDERS)) await store.createUser({ id: `u_${i}`, email: `user${i}@example.com`, passwordHash: 'h' });
      await store.createDevice({ id: 'd_1', name: 'D', email: null, secretHash: 'h' });
      await Promise.all(range(CONTENDERS).map((i) => store.updateDeviceInfo('d_1', { email: `user${i}@example.com`, report: i }, 100 + i)));
      const device = await store.getDevice('d_1');
      const claim = await store.getDeviceClaim('d_1');
      assert.equal(device?.email, null, 'a report naming an account never attaches the device to it');
      assert.equal(claim?.email, `user${String(device?.info?.['report'])}@example.com`);
    });

    it('a device deleted while it reports leaves no claim behind', async (t) => {
      const store = await fresh(t);
      await store.createUser({ id: 'u_ada', email: 'ada@example.com', passwordHash: 'h' });
      for (const i of range(CONTENDERS)) await store.createDevice({ id: `d_${i}`, name: 'D', email: null, secretHash: 'h' });
      await Promise.all(range(CONTENDERS).flatMap((i) => [
        store.updateDeviceInfo(`d_${i}`, { email: 'ada@example.com' }, 1),
        store.deleteDevice(`d_${i}`),
      ]));
      assert.deepEqual(await store.listDevices(), []);
      const claims = await Promise.all(range(CONTENDERS).map((i) => store.getDeviceClaim(`d_${i}`)));
      assert.deepEqual(claims.filter((c) => c !== undefined), []);
    });

    it('two overlapping batches of devices racing: one is added whole, the other not at all', async (t) => {
      const store = await fresh(t);
      const batch = (prefix: string) => ['d_shared', ...range(10).map((i) => `d_${prefix}${i}`)].map((id) => ({ id, name: id, email: null, secretHash: `h-${prefix}` }));
      const results = await Promise.allSettled([store.createDevices(batch('a')), store.createDevices(batch('b'))]);
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      const lost = results.find((r) => r.status === 'rejected');
      assert.ok(lost?.status === 'rejected' && lost.reason instanceof DuplicateError && lost.reason.key === 'd_shared', String(lost));
      const devices = await store.listDevices();
      assert.equal(devices.length, 11);
      assert.equal(new Set(devices.map((d) => d.secretHash)).size, 1, 'every device from the one batch that won');
    });

    it('twenty concurrent uses of one refresh token: exactly one rotates it, and only its successors are stored', async (t) => {
      const store = await fresh(t);
      await store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'h' });
      await store.createOAuthClient({ id: 'oc_1', name: 'App', redirectUris: ['https://a.example/cb'], secretHash: null, createdAt: NOW });
      const token = (hash: string, kind: OAuthTokenRecord['kind']): OAuthTokenRecord => ({
        tokenHash: hash, kind, familyId: 'f_1', clientId: 'oc_1', userId: 'u_1', scope: 'devices:read', createdAt: NOW, expiresAt: NOW + 3_600_000, rotatedAt: null,
      });
      await store.createOAuthCode({
        codeHash: 'c1', clientId: 'oc_1', userId: 'u_1', redirectUri: 'https://a.example/cb', scope: 'devices:read', codeChallenge: null,
        familyId: 'f_1', createdAt: NOW, expiresAt: NOW + 60_000, usedAt: null,
      });
      const redeemed = await Promise.all(range(CONTENDERS).map((i) => store.redeemOAuthCode('c1', NOW + 1, [token(`first${i}`, 'refresh')])));
      assert.equal(redeemed.filter(Boolean).length, 1);
      const winner = range(CONTENDERS).find((i) => redeemed[i])!;
      const rotated = await Promise.all(range(CONTENDERS).map((i) => store.rotateOAuthRefreshToken(`first${winner}`, NOW + 2, [token(`next${i}`, 'refresh')])));
      assert.equal(rotated.filter(Boolean).length, 1);
      const successors = await Promise.all(range(CONTENDERS).map((i) => store.getOAuthToken(`next${i}`)));
      assert.deepEqual(successors.map((s) => s !== undefined), rotated);
    });
  });
}
