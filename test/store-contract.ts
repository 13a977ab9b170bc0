/**
 * The behaviour every Store must have, run by test/contracts.test.ts (test/support/contracts.ts) against
 * each backend, whose `make` returns a fresh, empty, not yet migrated Store; the suite migrates and closes it.
 */
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { DuplicateError } from '../src/store/store.js';
import type { Store } from '../src/store/store.js';
import type { ContractSuite } from './support/contracts.js';
import { oauthStoreContract } from './store-contract-oauth.js';
import { storeRaceContract } from './store-contract-races.js';

const HOUR_MS = 3_600_000;

export const storeContract: ContractSuite<Store> = (implementation) => {
  async function fresh(t: TestContext): Promise<Store> {
    const store = await implementation.make();
    t.after(() => store.close());
    await store.migrate();
    return store;
  }

  function newDevice(id: string, email: string | null = null) {
    return { id, name: `Device ${id}`, email, secretHash: `hash-of-${id}` };
  }

  it('migrating twice is harmless', async (t) => {
    const store = await fresh(t);
    await store.migrate();
    assert.deepEqual(await store.listUsers(), []);
  });

  describe('users', () => {
    it('a new user can be found by id and by email', async (t) => {
      const store = await fresh(t);
      const before = Date.now();
      const user = await store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'scrypt$x' });
      assert.equal(user.id, 'u_1');
      assert.equal(user.email, 'ada@example.com');
      assert.equal(user.passwordHash, 'scrypt$x');
      assert.ok(user.createdAt >= before && user.createdAt <= Date.now());
      assert.deepEqual(await store.getUserById('u_1'), user);
      assert.deepEqual(await store.getUserByEmail('ada@example.com'), user);
    });

    it('emails are stored lower-cased and trimmed, and looked up regardless of case', async (t) => {
      const store = await fresh(t);
      const user = await store.createUser({ id: 'u_1', email: '  Ada@Example.COM ', passwordHash: 'h' });
      assert.equal(user.email, 'ada@example.com');
      assert.equal((await store.getUserByEmail('ADA@example.com'))?.id, 'u_1');
      assert.equal((await store.getUserByEmail(' ada@EXAMPLE.com '))?.id, 'u_1');
    });

    it('an unknown user is undefined, not an error', async (t) => {
      const store = await fresh(t);
      assert.equal(await store.getUserById('u_missing'), undefined);
      assert.equal(await store.getUserByEmail('nobody@example.com'), undefined);
    });

    it('an email can register only once, whatever its case', async (t) => {
      const store = await fresh(t);
      await store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'h' });
      await assert.rejects(store.createUser({ id: 'u_2', email: 'ADA@example.com', passwordHash: 'h' }), DuplicateError);
      assert.equal((await store.listUsers()).length, 1);
    });

    it('a user id can be used only once', async (t) => {
      const store = await fresh(t);
      await store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'h' });
      await assert.rejects(store.createUser({ id: 'u_1', email: 'bob@example.com', passwordHash: 'h' }), DuplicateError);
    });

    it('all users are listed', async (t) => {
      const store = await fresh(t);
      await store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'h' });
      await store.createUser({ id: 'u_2', email: 'bob@example.com', passwordHash: 'h' });
      const ids = (await store.listUsers()).map((u) => u.id).sort();
      assert.deepEqual(ids, ['u_1', 'u_2']);
    });

    it('a changed password replaces the old hash and nothing else', async (t) => {
      const store = await fresh(t);
      const user = await store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'old' });
      await store.setUserPassword('u_1', 'new');
      assert.deepEqual(await store.getUserById('u_1'), { ...user, passwordHash: 'new' });
    });
  });

  describe('devices', () => {
    it('a new device can be fetched with no info and never seen', async (t) => {
      const store = await fresh(t);
      const before = Date.now();
      const device = await store.createDevice(newDevice('d_1', 'ada@example.com'));
      assert.deepEqual({ ...device, createdAt: 0 }, {
        id: 'd_1',
        name: 'Device d_1',
        email: 'ada@example.com',
        secretHash: 'hash-of-d_1',
        info: null,
        createdAt: 0,
        lastSeenAt: null,
        factoryKeyId: null,
        revokedAt: null,
      });
      assert.ok(device.createdAt >= before && device.createdAt <= Date.now());
      assert.deepEqual(await store.getDevice('d_1'), device);
    });

    it('a device may have no owner email', async (t) => {
      const store = await fresh(t);
      const device = await store.createDevice(newDevice('d_1', null));
      assert.equal(device.email, null);
      assert.equal((await store.getDevice('d_1'))?.email, null);
    });

    it('an unknown device is undefined, not an error', async (t) => {
      const store = await fresh(t);
      assert.equal(await store.getDevice('d_missing'), undefined);
    });

    it('a device id can be used only once', async (t) => {
      const store = await fresh(t);
      await store.createDevice(newDevice('d_1'));
      await assert.rejects(store.createDevice(newDevice('d_1')), DuplicateError);
    });

    it('all devices are listed', async (t) => {
      const store = await fresh(t);
      await store.createDevice(newDevice('d_1', 'ada@example.com'));
      await store.createDevice(newDevice('d_2'));
      const ids = (await store.listDevices()).map((d) => d.id).sort();
      assert.deepEqual(ids, ['d_1', 'd_2']);
    });

    it("a user sees only the devices that name their email, whatever its case", async (t) => {
      const store = await fresh(t);
      await store.createDevice(newDevice('d_1', 'Ada@Example.com'));
      await store.createDevice(newDevice('d_2', 'bob@example.com'));
      await store.createDevice(newDevice('d_3', null));
      await store.createDevice(newDevice('d_4', 'ada@example.com'));
      assert.equal((await store.getDevice('d_1'))?.email, 'ada@example.com');
      const ids = (await store.listDevicesByEmail('ADA@example.COM')).map((d) => d.id).sort();
      assert.deepEqual(ids, ['d_1', 'd_4']);
      assert.deepEqual(await store.listDevicesByEmail('nobody@example.com'), []);
      assert.deepEqual(await store.listDevicesByEmail(''), []);
    });

    it("a device's email from its info makes it visible to that user", async (t) => {
      const store = await fresh(t);
      await store.createDevice(newDevice('d_1'));
      const info = { model: 'thermo-2', firmware: '1.4.0', email: ' Ada@Example.com', nested: { a: [1, 2] } };
      await store.updateDeviceInfo('d_1', info, 1_700_000_000_000);
      const device = await store.getDevice('d_1');
      assert.deepEqual(device?.info, info);
      assert.equal(device?.email, 'ada@example.com');
      assert.equal(device?.lastSeenAt, 1_700_000_000_000);
      assert.deepEqual((await store.listDevicesByEmail('ada@example.com')).map((d) => d.id), ['d_1']);
    });

    it("a device's info without a usable email keeps the owner it had", async (t) => {
      const store = await fresh(t);
      await store.createDevice(newDevice('d_1', 'ada@example.com'));
      for (const info of [{ model: 'x' }, { email: '' }, { email: '   ' }, { email: 42 }, { email: null }]) {
        await store.updateDeviceInfo('d_1', info, 1);
        const device = await store.getDevice('d_1');
        assert.deepEqual(device?.info, info);
        assert.equal(device?.email, 'ada@example.com');
      }
    });

    it('a new email in the info moves the device to that user', async (t) => {
      const store = await fresh(t);
      await store.createDevice(newDevice('d_1', 'ada@example.com'));
      await store.updateDeviceInfo('d_1', { email: 'bob@example.com' }, 1);
      assert.deepEqual(await store.listDevicesByEmail('ada@example.com'), []);
      assert.deepEqual((await store.listDevicesByEmail('bob@example.com')).map((d) => d.id), ['d_1']);
    });

    it("a device naming an existing user's email only claims that account; the owner stays", async (t) => {
      const store = await fresh(t);
      await store.createUser({ id: 'u_ada', email: 'ada@example.com', passwordHash: 'h' });
      await store.createDevice(newDevice('d_1'));
      await store.updateDeviceInfo('d_1', { email: 'ADA@example.com' }, 10);
      assert.equal((await store.getDevice('d_1'))?.email, null);
      assert.deepEqual(await store.listDevicesByEmail('ada@example.com'), []);
      assert.deepEqual(await store.getDeviceClaim('d_1'), { deviceId: 'd_1', email: 'ada@example.com', createdAt: 10, declinedAt: null });
      assert.deepEqual((await store.listDeviceClaims('Ada@Example.com')).map((c) => c.deviceId), ['d_1']);
      await store.updateDeviceInfo('d_1', { email: 'ada@example.com' }, 20);
      assert.equal((await store.getDeviceClaim('d_1'))?.createdAt, 10, 'reconnecting keeps the claim as it was');
    });

    it("a device with an unconfirmed owner email that names an existing user's email loses that email", async (t) => {
      const store = await fresh(t);
      await store.createUser({ id: 'u_ada', email: 'ada@example.com', passwordHash: 'h' });
      await store.createDevice(newDevice('d_1', 'nobody-yet@example.com'));
      await store.updateDeviceInfo('d_1', { email: 'ada@example.com' }, 10);
      assert.equal((await store.getDevice('d_1'))?.email, null, 'whoever confirms the old address gets nothing');
      assert.equal((await store.getDeviceClaim('d_1'))?.email, 'ada@example.com');
    });

    it("an owned device naming another address keeps its owner and claims that address", async (t) => {
      const store = await fresh(t);
      await store.createUser({ id: 'u_ada', email: 'ada@example.com', passwordHash: 'h' });
      await store.createDevice(newDevice('d_1', 'ada@example.com'));
      await store.updateDeviceInfo('d_1', { email: 'new@example.com' }, 10);
      assert.equal((await store.getDevice('d_1'))?.email, 'ada@example.com');
      assert.equal((await store.getDeviceClaim('d_1'))?.email, 'new@example.com');
      await store.updateDeviceInfo('d_1', { email: 'ada@example.com' }, 20);
      assert.equal(await store.getDeviceClaim('d_1'), undefined, 'naming its owner again drops the claim');
    });

    it('accepting a claim moves the device once; declining keeps it declined while the device names that email', async (t) => {
      const store = await fresh(t);
      await store.createUser({ id: 'u_ada', email: 'ada@example.com', passwordHash: 'h' });
      await store.createUser({ id: 'u_bob', email: 'bob@example.com', passwordHash: 'h' });
      await store.createDevice(newDevice('d_1'));
      await store.createDevice(newDevice('d_2'));
      await store.updateDeviceInfo('d_1', { email: 'ada@example.com' }, 1);
      await store.updateDeviceInfo('d_2', { email: 'ada@example.com' }, 1);
      await store.createConfirmation({ idHash: 'link1', purpose: 'claim', email: 'ada@example.com', deviceId: 'd_1', createdAt: 1, expiresAt: 100 });
      assert.equal(await store.acceptDeviceClaim('d_1', 'bob@example.com', 2), undefined, 'not a claim of bob');
      assert.equal((await store.acceptDeviceClaim('d_1', 'ada@example.com', 2))?.email, 'ada@example.com');
      assert.deepEqual((await store.listDevicesByEmail('ada@example.com')).map((d) => d.id), ['d_1']);
      assert.equal((await store.getConfirmation('link1'))?.usedAt, 2);
      assert.equal(await store.acceptDeviceClaim('d_1', 'ada@example.com', 3), undefined, 'once');

      assert.equal(await store.declineDeviceClaim('d_2', 'ada@example.com', 4), true);
      assert.equal(await store.declineDeviceClaim('d_2', 'ada@example.com', 5), false);
      assert.deepEqual(await store.listDeviceClaims('ada@example.com'), []);
      await store.updateDeviceInfo('d_2', { email: 'ada@example.com' }, 6);
      assert.equal((await store.getDeviceClaim('d_2'))?.declinedAt, 4);
      assert.equal(await store.acceptDeviceClaim('d_2', 'ada@example.com', 7), undefined);
      assert.equal((await store.getDevice('d_2'))?.email, null);
      await store.deleteDevice('d_2');
      assert.equal(await store.getDeviceClaim('d_2'), undefined);
    });

    it('a claim link is no registration link, and counts towards the mail limits', async (t) => {
      const store = await fresh(t);
      await store.createConfirmation({ idHash: 'link1', purpose: 'claim', email: 'ada@example.com', deviceId: 'd_1', createdAt: 1, expiresAt: 100 });
      assert.deepEqual(await store.confirmEmail('link1', { id: 'u_x', passwordHash: 'h' }, 2), { status: 'unknown' });
      assert.equal(await store.countConfirmations({ since: 0, email: 'ada@example.com' }), 1);
      assert.equal(await store.countConfirmations({ since: 0, purpose: 'claim' }), 1);
      assert.equal(await store.countConfirmations({ since: 0, purpose: 'registration' }), 0);
    });

    it('touching a device records when it was last seen and keeps its info', async (t) => {
      const store = await fresh(t);
      await store.createDevice(newDevice('d_1'));
      await store.updateDeviceInfo('d_1', { model: 'x' }, 1000);
      await store.touchDevice('d_1', 2000);
      const device = await store.getDevice('d_1');
      assert.equal(device?.lastSeenAt, 2000);
      assert.deepEqual(device?.info, { model: 'x' });
    });

    it('updating or touching an unknown device does nothing', async (t) => {
      const store = await fresh(t);
      await store.updateDeviceInfo('d_missing', { email: 'ada@example.com' }, 1);
      await store.touchDevice('d_missing', 1);
      assert.deepEqual(await store.listDevices(), []);
    });

    it('deleting a device reports whether it existed', async (t) => {
      const store = await fresh(t);
      await store.createDevice(newDevice('d_1'));
      assert.equal(await store.deleteDevice('d_1'), true);
      assert.equal(await store.getDevice('d_1'), undefined);
      assert.equal(await store.deleteDevice('d_1'), false);
    });
  });

  describe('factory provisioning', () => {
    const key = (id: string, keyHash = `key-hash-${id}`) => ({ id, name: `Line ${id}`, keyHash, derivationKey: `derive-${id}` });

    it('a new factory key can be found by id and by the hash of its value, and is listed', async (t) => {
      const store = await fresh(t);
      const before = Date.now();
      const k = await store.createFactoryKey(key('fk_1'));
      assert.deepEqual({ ...k, createdAt: 0 }, { id: 'fk_1', name: 'Line fk_1', keyHash: 'key-hash-fk_1', derivationKey: 'derive-fk_1', createdAt: 0, rotatedAt: null, revokedAt: null });
      assert.ok(k.createdAt >= before && k.createdAt <= Date.now());
      assert.deepEqual(await store.getFactoryKey('fk_1'), k);
      assert.deepEqual(await store.getFactoryKeyByHash('key-hash-fk_1'), k);
      assert.equal(await store.getFactoryKeyByHash('other'), undefined);
      assert.equal(await store.getFactoryKey('fk_missing'), undefined);
      await store.createFactoryKey(key('fk_2'));
      assert.deepEqual((await store.listFactoryKeys()).map((x) => x.id).sort(), ['fk_1', 'fk_2']);
    });

    it('two factory keys cannot share an id or a key hash', async (t) => {
      const store = await fresh(t);
      await store.createFactoryKey(key('fk_1', 'h'));
      await assert.rejects(store.createFactoryKey(key('fk_1', 'h2')), DuplicateError);
      await assert.rejects(store.createFactoryKey(key('fk_2', 'h')), DuplicateError);
      assert.equal((await store.listFactoryKeys()).length, 1);
    });

    it('rotating a factory key replaces its hash: the old value no longer finds it, the id stays', async (t) => {
      const store = await fresh(t);
      await store.createFactoryKey(key('fk_1', 'old'));
      assert.equal(await store.rotateFactoryKey('fk_1', 'new', 5000), true);
      assert.equal(await store.getFactoryKeyByHash('old'), undefined);
      const k = await store.getFactoryKeyByHash('new');
      assert.equal(k?.id, 'fk_1');
      assert.equal(k?.rotatedAt, 5000);
      assert.equal(k?.derivationKey, 'derive-fk_1');
      assert.equal(await store.rotateFactoryKey('fk_missing', 'x', 1), false);
    });

    it('a revoked factory key keeps its first revocation time and cannot be rotated', async (t) => {
      const store = await fresh(t);
      await store.createFactoryKey(key('fk_1'));
      assert.equal(await store.revokeFactoryKey('fk_1', 1000), true);
      assert.equal(await store.revokeFactoryKey('fk_1', 2000), true);
      assert.equal((await store.getFactoryKey('fk_1'))?.revokedAt, 1000);
      assert.equal(await store.rotateFactoryKey('fk_1', 'new', 3000), false);
      assert.equal((await store.getFactoryKey('fk_1'))?.keyHash, 'key-hash-fk_1');
      assert.equal(await store.revokeFactoryKey('fk_missing', 1), false);
    });

    it('a device remembers the factory key that provisioned it', async (t) => {
      const store = await fresh(t);
      const d = await store.createDevice({ ...newDevice('d_1'), factoryKeyId: 'fk_1' });
      assert.equal(d.factoryKeyId, 'fk_1');
      assert.equal((await store.getDevice('d_1'))?.factoryKeyId, 'fk_1');
    });

    it('a batch of devices is added whole', async (t) => {
      const store = await fresh(t);
      const added = await store.createDevices([newDevice('d_1', 'Ada@Example.com'), newDevice('d_2')]);
      assert.deepEqual(added.map((d) => [d.id, d.email, d.revokedAt]), [['d_1', 'ada@example.com', null], ['d_2', null, null]]);
      assert.deepEqual(await store.getDevice('d_1'), added[0]);
      assert.deepEqual(await store.createDevices([]), []);
    });

    it('a batch with an id that exists adds nothing and names that id', async (t) => {
      const store = await fresh(t);
      await store.createDevice(newDevice('d_2'));
      await assert.rejects(store.createDevices([newDevice('d_1'), newDevice('d_2'), newDevice('d_3')]), (err: unknown) => err instanceof DuplicateError && err.key === 'd_2');
      assert.deepEqual((await store.listDevices()).map((d) => d.id), ['d_2']);
    });

    it('a batch with the same id twice adds nothing and names that id', async (t) => {
      const store = await fresh(t);
      await assert.rejects(store.createDevices([newDevice('d_1'), newDevice('d_2'), newDevice('d_1')]), (err: unknown) => err instanceof DuplicateError && err.key === 'd_1');
      assert.deepEqual(await store.listDevices(), []);
    });

    it('a device can be revoked and re-enabled; an unknown one reports false', async (t) => {
      const store = await fresh(t);
      await store.createDevice(newDevice('d_1'));
      assert.equal(await store.setDeviceRevoked('d_1', 1234), true);
      assert.equal((await store.getDevice('d_1'))?.revokedAt, 1234);
      assert.equal(await store.setDeviceRevoked('d_1', null), true);
      assert.equal((await store.getDevice('d_1'))?.revokedAt, null);
      assert.equal(await store.setDeviceRevoked('d_missing', 1), false);
    });
  });

  describe('tokens', () => {
    async function withUser(t: TestContext): Promise<Store> {
      const store = await fresh(t);
      await store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'h' });
      return store;
    }

    it('a saved token can be looked up by its hash', async (t) => {
      const store = await withUser(t);
      const token = { tokenHash: 'a'.repeat(64), userId: 'u_1', createdAt: 1000, expiresAt: 1000 + HOUR_MS };
      await store.createToken(token);
      assert.deepEqual(await store.getToken(token.tokenHash), token);
      assert.equal(await store.getToken('b'.repeat(64)), undefined);
    });

    it('a token hash can be saved only once', async (t) => {
      const store = await withUser(t);
      const token = { tokenHash: 'a'.repeat(64), userId: 'u_1', createdAt: 1000, expiresAt: 2000 };
      await store.createToken(token);
      await assert.rejects(store.createToken({ ...token, expiresAt: 3000 }), DuplicateError);
    });

    it('a token must belong to an existing user', async (t) => {
      const store = await withUser(t);
      await assert.rejects(store.createToken({ tokenHash: 'a'.repeat(64), userId: 'u_missing', createdAt: 1, expiresAt: 2 }));
      assert.equal(await store.getToken('a'.repeat(64)), undefined);
    });

    it('a deleted token is gone, and deleting it again is harmless', async (t) => {
      const store = await withUser(t);
      await store.createToken({ tokenHash: 'a'.repeat(64), userId: 'u_1', createdAt: 1, expiresAt: 2 });
      await store.deleteToken('a'.repeat(64));
      assert.equal(await store.getToken('a'.repeat(64)), undefined);
      await store.deleteToken('a'.repeat(64));
    });

    it('clean-up removes tokens whose expiry has been reached and keeps the rest', async (t) => {
      const store = await withUser(t);
      const now = 1_700_000_000_000;
      await store.createToken({ tokenHash: 'past', userId: 'u_1', createdAt: 0, expiresAt: now - 1 });
      await store.createToken({ tokenHash: 'now', userId: 'u_1', createdAt: 0, expiresAt: now });
      await store.createToken({ tokenHash: 'future', userId: 'u_1', createdAt: 0, expiresAt: now + 1 });
      assert.equal(await store.deleteExpiredTokens(now), 2);
      assert.equal(await store.getToken('past'), undefined);
      assert.equal(await store.getToken('now'), undefined);
      assert.equal((await store.getToken('future'))?.expiresAt, now + 1);
      assert.equal(await store.deleteExpiredTokens(now), 0);
    });

    it("a user's live tokens are listed newest first, with when each was last used", async (t) => {
      const store = await withUser(t);
      await store.createUser({ id: 'u_2', email: 'bob@example.com', passwordHash: 'h' });
      const now = 1_700_000_000_000;
      await store.createToken({ tokenHash: 'old', userId: 'u_1', createdAt: now - 2000, expiresAt: now + HOUR_MS });
      await store.createToken({ tokenHash: 'new', userId: 'u_1', createdAt: now - 1000, expiresAt: now + HOUR_MS });
      await store.createToken({ tokenHash: 'gone', userId: 'u_1', createdAt: now - 3000, expiresAt: now });
      await store.createToken({ tokenHash: 'bobs', userId: 'u_2', createdAt: now, expiresAt: now + HOUR_MS });
      await store.touchToken('old', now - 500);
      assert.deepEqual(await store.listTokensByUser('u_1', now), [
        { tokenHash: 'new', userId: 'u_1', createdAt: now - 1000, expiresAt: now + HOUR_MS, lastUsedAt: null },
        { tokenHash: 'old', userId: 'u_1', createdAt: now - 2000, expiresAt: now + HOUR_MS, lastUsedAt: now - 500 },
      ]);
      assert.deepEqual(await store.listTokensByUser('u_missing', now), []);
    });

    it('touching a token keeps it valid and unchanged otherwise', async (t) => {
      const store = await withUser(t);
      const token = { tokenHash: 'a'.repeat(64), userId: 'u_1', createdAt: 1, expiresAt: 2 + HOUR_MS };
      await store.createToken(token);
      await store.touchToken(token.tokenHash, 5);
      await store.touchToken('b'.repeat(64), 5);
      assert.deepEqual(await store.getToken(token.tokenHash), token);
    });

    it('deleting several tokens removes exactly those and says how many existed', async (t) => {
      const store = await withUser(t);
      const hashes = Array.from({ length: 1200 }, (_, i) => i.toString(16).padStart(64, '0'));
      for (const h of hashes) await store.createToken({ tokenHash: h, userId: 'u_1', createdAt: 1, expiresAt: 2 + HOUR_MS });
      const doomed = [...hashes.slice(0, 1100), 'f'.repeat(64)];
      assert.equal(await store.deleteTokens(doomed), 1100);
      assert.equal(await store.getToken(hashes[0]!), undefined);
      assert.equal(await store.getToken(hashes[1099]!), undefined);
      assert.equal((await store.getToken(hashes[1100]!))?.userId, 'u_1');
      assert.equal((await store.listTokensByUser('u_1', 0)).length, 100);
      assert.equal(await store.deleteTokens([]), 0);
    });
  });

  describe('email confirmations', () => {
    const NOW = 1_700_000_000_000;
    const pending = (idHash: string, email = 'new@example.com', over: Partial<{ deviceId: string | null; createdAt: number; expiresAt: number }> = {}) =>
      ({ idHash, email, deviceId: 'd_1', createdAt: NOW, expiresAt: NOW + HOUR_MS, ...over });

    it('a confirmation is found by its hash and starts unused', async (t) => {
      const store = await fresh(t);
      await store.createConfirmation(pending('c1', ' New@Example.com'));
      assert.deepEqual(await store.getConfirmation('c1'), { ...pending('c1'), purpose: 'registration', usedAt: null });
      assert.equal(await store.getConfirmation('c2'), undefined);
      await assert.rejects(store.createConfirmation(pending('c1')), DuplicateError);
    });

    it('recent confirmations are counted in all, per email and per device', async (t) => {
      const store = await fresh(t);
      await store.createConfirmation(pending('c1', 'a@example.com', { createdAt: NOW - 10_000 }));
      await store.createConfirmation(pending('c2', 'a@example.com', { createdAt: NOW }));
      await store.createConfirmation(pending('c3', 'b@example.com', { createdAt: NOW, deviceId: 'd_2' }));
      await store.createConfirmation(pending('c4', 'b@example.com', { createdAt: NOW, deviceId: null }));
      assert.equal(await store.countConfirmations({ since: NOW - 10_000 }), 4);
      assert.equal(await store.countConfirmations({ since: NOW - 9_999 }), 3);
      assert.equal(await store.countConfirmations({ since: 0, email: 'A@Example.com' }), 2);
      assert.equal(await store.countConfirmations({ since: NOW, email: 'a@example.com' }), 1);
      assert.equal(await store.countConfirmations({ since: 0, deviceId: 'd_1' }), 2);
      assert.equal(await store.countConfirmations({ since: 0, deviceId: 'd_2', email: 'b@example.com' }), 1);
      assert.equal(await store.countConfirmations({ since: NOW + 1 }), 0);
    });

    it('confirming creates the user and uses every confirmation of that email, once', async (t) => {
      const store = await fresh(t);
      await store.createConfirmation(pending('c1'));
      await store.createConfirmation(pending('c2'));
      await store.createConfirmation(pending('other', 'other@example.com'));
      const r = await store.confirmEmail('c1', { id: 'u_new', passwordHash: 'scrypt$x' }, NOW + 5);
      assert.equal(r.status, 'confirmed');
      assert.deepEqual(r.status === 'confirmed' && r.user, { id: 'u_new', email: 'new@example.com', passwordHash: 'scrypt$x', createdAt: NOW + 5 });
      assert.deepEqual(await store.getUserByEmail('new@example.com'), r.status === 'confirmed' ? r.user : undefined);
      assert.equal((await store.getConfirmation('c1'))?.usedAt, NOW + 5);
      assert.equal((await store.getConfirmation('c2'))?.usedAt, NOW + 5);
      assert.equal((await store.getConfirmation('other'))?.usedAt, null);
      assert.deepEqual(await store.confirmEmail('c1', { id: 'u_again', passwordHash: 'h' }, NOW + 6), { status: 'used', email: 'new@example.com' });
      assert.deepEqual(await store.confirmEmail('c2', { id: 'u_again', passwordHash: 'h' }, NOW + 6), { status: 'used', email: 'new@example.com' });
      assert.equal(await store.getUserById('u_again'), undefined);
    });

    it('an unknown or expired confirmation changes nothing', async (t) => {
      const store = await fresh(t);
      await store.createConfirmation(pending('c1', 'new@example.com', { expiresAt: NOW }));
      assert.deepEqual(await store.confirmEmail('nope', { id: 'u_1', passwordHash: 'h' }, NOW - 1), { status: 'unknown' });
      assert.deepEqual(await store.confirmEmail('c1', { id: 'u_1', passwordHash: 'h' }, NOW), { status: 'expired', email: 'new@example.com' });
      assert.deepEqual(await store.listUsers(), []);
      assert.equal((await store.getConfirmation('c1'))?.usedAt, null);
    });

    it('a confirmation for an email that got a user meanwhile changes nothing', async (t) => {
      const store = await fresh(t);
      const user = await store.createUser({ id: 'u_1', email: 'new@example.com', passwordHash: 'original' });
      await store.createConfirmation(pending('c1'));
      assert.deepEqual(await store.confirmEmail('c1', { id: 'u_2', passwordHash: 'other' }, NOW), { status: 'registered', email: 'new@example.com' });
      assert.deepEqual(await store.listUsers(), [user]);
      assert.equal((await store.getConfirmation('c1'))?.usedAt, null);
    });

    it('two confirmations of one email racing create one user', async (t) => {
      const store = await fresh(t);
      await store.createConfirmation(pending('c1'));
      await store.createConfirmation(pending('c2'));
      const results = await Promise.all([
        store.confirmEmail('c1', { id: 'u_a', passwordHash: 'a' }, NOW),
        store.confirmEmail('c2', { id: 'u_b', passwordHash: 'b' }, NOW),
      ]);
      assert.deepEqual(results.map((r) => r.status).sort(), ['confirmed', 'used']);
      assert.equal((await store.listUsers()).length, 1);
    });

    it('clean-up removes confirmations created before a time, used or not, and keeps the rest', async (t) => {
      const store = await fresh(t);
      await store.createConfirmation(pending('old', 'a@example.com', { createdAt: NOW - 1 }));
      await store.createConfirmation(pending('used', 'b@example.com', { createdAt: NOW - 2 }));
      await store.confirmEmail('used', { id: 'u_b', passwordHash: 'h' }, NOW - 1);
      await store.createConfirmation(pending('now', 'a@example.com', { createdAt: NOW }));
      assert.equal(await store.deleteConfirmationsCreatedBefore(NOW), 2);
      assert.equal(await store.getConfirmation('used'), undefined);
      assert.equal(await store.getConfirmation('old'), undefined);
      assert.equal((await store.getConfirmation('now'))?.email, 'a@example.com');
    });
  });

  oauthStoreContract(fresh);
  storeRaceContract(fresh);

  describe('revoked tokens', () => {
    const hash = (c: string): string => c.repeat(64);

    it("a user's revoked tokens that have not expired are listed, most recently revoked first", async (t) => {
      const store = await fresh(t);
      const now = 1_700_000_000_000;
      await store.addRevokedTokens([
        { tokenHash: hash('a'), userId: 'u_1', expiresAt: now + HOUR_MS, revokedAt: now - 3000 },
        { tokenHash: hash('b'), userId: 'u_1', expiresAt: now + HOUR_MS, revokedAt: now - 1000 },
        { tokenHash: hash('c'), userId: 'u_1', expiresAt: now, revokedAt: now - 2000 },
        { tokenHash: hash('d'), userId: 'u_2', expiresAt: now + HOUR_MS, revokedAt: now - 500 },
      ]);
      const listed = await store.listRevokedTokens('u_1', now, 10);
      assert.deepEqual(listed.map((r) => r.tokenHash), [hash('b'), hash('a')], 'expired and other users\' tokens are left out');
      assert.deepEqual(listed[0], { tokenHash: hash('b'), userId: 'u_1', expiresAt: now + HOUR_MS, revokedAt: now - 1000 });
      assert.deepEqual((await store.listRevokedTokens('u_1', now, 1)).map((r) => r.tokenHash), [hash('b')], 'the limit keeps the newest');
      assert.deepEqual(await store.listRevokedTokens('u_nobody', now, 10), []);
    });

    it('revoking a token twice keeps the first record', async (t) => {
      const store = await fresh(t);
      await store.addRevokedTokens([{ tokenHash: hash('a'), userId: 'u_1', expiresAt: 5000, revokedAt: 100 }]);
      await store.addRevokedTokens([{ tokenHash: hash('a'), userId: 'u_1', expiresAt: 5000, revokedAt: 200 }, { tokenHash: hash('e'), userId: 'u_1', expiresAt: 5000, revokedAt: 200 }]);
      await store.addRevokedTokens([]);
      const listed = await store.listRevokedTokens('u_1', 0, 10);
      assert.deepEqual(listed.map((r) => [r.tokenHash, r.revokedAt]), [[hash('e'), 200], [hash('a'), 100]]);
    });

    it('clean-up forgets revocations of expired tokens and keeps the rest', async (t) => {
      const store = await fresh(t);
      await store.addRevokedTokens([
        { tokenHash: hash('a'), userId: 'u_1', expiresAt: 1000, revokedAt: 1 },
        { tokenHash: hash('b'), userId: 'u_1', expiresAt: 2000, revokedAt: 1 },
      ]);
      assert.equal(await store.deleteExpiredRevokedTokens(1000), 1);
      assert.deepEqual((await store.listRevokedTokens('u_1', 0, 10)).map((r) => r.tokenHash), [hash('b')]);
      assert.equal(await store.deleteExpiredRevokedTokens(1000), 0);
    });
  });
};
