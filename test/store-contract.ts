/**
 * The behaviour every Store must have. Each backend's test file calls `storeContract` with a factory that
 * returns a fresh, empty, not yet migrated Store; the suite migrates and closes it.
 */
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { DuplicateError } from '../src/store/store.js';
import type { Store } from '../src/store/store.js';

const HOUR_MS = 3_600_000;

export function storeContract(name: string, open: () => Promise<Store>): void {
  async function fresh(t: TestContext): Promise<Store> {
    const store = await open();
    t.after(() => store.close());
    await store.migrate();
    return store;
  }

  function newDevice(id: string, email: string | null = null) {
    return { id, name: `Device ${id}`, email, secretHash: `hash-of-${id}` };
  }

  describe(`Store contract: ${name}`, () => {
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
    });

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
  });
}
