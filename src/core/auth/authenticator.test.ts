import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { LocalBus } from '../local-bus.js';
import { hashPassword, sha256Hex } from '../secrets.js';
import { TOKENS_REVOKED_TOPIC, decodeRevocation, type Revocation } from '../token-revocation.js';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import { Authenticator, tokenId, type Session } from './authenticator.js';

const TTL = { tokenTtlMs: 3_600_000, rememberTokenTtlMs: 7_200_000, cacheTtlMs: 60_000 };

async function setup(t: TestContext) {
  const store = SqliteStore.open(':memory:');
  await store.migrate();
  const bus = new LocalBus();
  const auth = new Authenticator(store, TTL, bus);
  const events: Revocation[] = [];
  bus.subscribe(TOKENS_REVOKED_TOPIC, (_topic, payload) => events.push(decodeRevocation(payload)));
  await store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: await hashPassword('first password') });
  t.after(async () => {
    auth.close();
    await bus.close();
    await store.close();
  });
  return { store, bus, auth, events };
}

async function session(auth: Authenticator, token: string): Promise<Session> {
  const s = await auth.session(token);
  assert.ok(s, 'the token works');
  return s;
}

describe('Authenticator revocation', () => {
  it('logout revokes at once, even a cached token, and publishes its hash, user and expiry', async (t) => {
    const { auth, events } = await setup(t);
    const { token, expiresAt } = (await auth.login('ada@example.com', 'first password', false, '127.0.0.1'))!;
    await session(auth, token);
    assert.ok(auth.session(token) && !(auth.session(token) instanceof Promise), 'cached: answered synchronously');
    await auth.logout(token);
    assert.equal(await auth.session(token), undefined);
    assert.deepEqual(events, [{ userId: 'u_1', tokens: [{ tokenHash: sha256Hex(token), expiresAt }] }]);
  });

  it('tells its revocation listeners of every revocation: its own, another node\'s through the Bus, and OAuth ones', async (t) => {
    const { store, bus, auth } = await setup(t);
    const other = new Authenticator(store, TTL, bus); // a second node sharing the store and the bus
    t.after(() => other.close());
    const heard: Array<{ node: string; hashes?: readonly string[]; matched?: boolean }> = [];
    const probe: Session = { user: { id: 'u_1', email: 'ada@example.com', passwordHash: '', createdAt: 0 }, expiresAt: 0, tokenHash: 'f'.repeat(64), oauth: { clientId: 'c1', familyId: 'fam1' } };
    for (const [node, a] of [['this', auth], ['other', other]] as const) {
      a.onRevoked((e) => heard.push('tokenHashes' in e ? { node, hashes: e.tokenHashes } : { node, matched: e.match(probe) }));
    }
    const { token } = (await auth.login('ada@example.com', 'first password', false, '127.0.0.1'))!;
    await auth.logout(token);
    assert.deepEqual(heard.filter((h) => h.node === 'other'), [{ node: 'other', hashes: [sha256Hex(token)] }]);
    assert.ok(heard.some((h) => h.node === 'this' && h.hashes?.[0] === sha256Hex(token)));
    heard.length = 0;
    other.forgetSessions((s) => s.oauth?.familyId === 'fam1');
    assert.deepEqual(heard, [{ node: 'other', matched: true }], 'an OAuth revocation is told with its test on a session');
    let late = 0;
    const unsubscribe = other.onRevoked(() => late++);
    unsubscribe();
    other.forgetSessions(() => false);
    assert.equal(late, 0, 'an unsubscribed listener hears nothing more');
  });

  it('a revocation published by another node evicts the token from this node\'s cache', async (t) => {
    const { store, bus, auth } = await setup(t);
    const other = new Authenticator(store, TTL, bus); // a second node sharing the store and the bus
    t.after(() => other.close());
    const { token } = (await auth.login('ada@example.com', 'first password', false, '127.0.0.1'))!;
    await session(other, token);
    await auth.logout(token);
    assert.equal(await other.session(token), undefined, 'evicted on the event, not after the cache TTL');
  });

  it('lists live tokens by id (never the token), marking the current one, and revokes one by id', async (t) => {
    const { auth, events } = await setup(t);
    const a = (await auth.login('ada@example.com', 'first password', false, '127.0.0.1'))!;
    const b = (await auth.login('ada@example.com', 'first password', true, '127.0.0.1'))!;
    const s = await session(auth, a.token);
    const list = await auth.listTokens(s);
    assert.equal(list.length, 2);
    assert.deepEqual(list.map((x) => x.current).sort(), [false, true]);
    for (const x of list) {
      assert.match(x.id, /^[0-9a-f]{16}$/);
      assert.ok(!a.token.includes(x.id) && !b.token.includes(x.id));
    }
    const other = list.find((x) => !x.current)!;
    assert.equal(other.id, tokenId(sha256Hex(b.token)));
    assert.equal(other.expires, new Date(b.expiresAt).toISOString());
    assert.equal(await auth.revokeById(s.user, other.id), true);
    assert.equal(await auth.revokeById(s.user, other.id), false, 'already gone');
    assert.equal(await auth.session(b.token), undefined);
    assert.ok(await auth.session(a.token));
    assert.deepEqual(events.map((e) => e.tokens.map((x) => x.tokenHash)), [[sha256Hex(b.token)]]);
  });

  it('records when a token was last used', async (t) => {
    const { store, auth } = await setup(t);
    const { token } = (await auth.login('ada@example.com', 'first password', false, '127.0.0.1'))!;
    const before = Date.now();
    const s = await session(auth, token);
    // The write happens off the request path; the listing shows it once done.
    let listed = await auth.listTokens(s);
    for (let i = 0; i < 50 && listed[0]!.lastUsed === null; i++) {
      await new Promise((r) => setTimeout(r, 10));
      listed = await auth.listTokens(s);
    }
    assert.ok(Date.parse(listed[0]!.lastUsed!) >= before);
    assert.ok(((await store.listTokensByUser('u_1', Date.now()))[0]!.lastUsedAt ?? 0) >= before);
  });

  it('a password change revokes every other token in one event and keeps the current one', async (t) => {
    const { auth, store, events } = await setup(t);
    const tokens = [];
    for (let i = 0; i < 3; i++) tokens.push((await auth.login('ada@example.com', 'first password', false, '127.0.0.1'))!.token);
    const s = await session(auth, tokens[0]!);
    for (const tk of tokens) await session(auth, tk); // all cached
    assert.equal(await auth.verifyPassword(s.user.email, 'wrong', '127.0.0.1'), undefined);
    assert.equal((await auth.verifyPassword(s.user.email, 'first password', '127.0.0.1'))?.id, s.user.id);
    await auth.changePassword(s.user, 'second password', s.tokenHash, '127.0.0.1');
    assert.ok(await auth.session(tokens[0]!));
    assert.equal(await auth.session(tokens[1]!), undefined);
    assert.equal(await auth.session(tokens[2]!), undefined);
    assert.equal(events.length, 1);
    assert.deepEqual(events[0]!.tokens.map((x) => x.tokenHash).sort(), [sha256Hex(tokens[1]!), sha256Hex(tokens[2]!)].sort());
    assert.equal(await auth.login('ada@example.com', 'first password', false, '127.0.0.1'), undefined);
    assert.ok(await auth.login('ada@example.com', 'second password', false, '127.0.0.1'));
    assert.equal((await store.listTokensByUser('u_1', Date.now())).length, 2);
  });

  it('a token revoked while its session is being loaded is not cached as valid', async (t) => {
    const { auth } = await setup(t);
    const { token, expiresAt } = (await auth.login('ada@example.com', 'first password', false, '127.0.0.1'))!;
    // A cache miss reads the token, the revocation deletes and evicts, then the miss would cache what
    // it read: it must notice the revocation in between.
    const loading = auth.session(token);
    await auth.revoke('u_1', [{ tokenHash: sha256Hex(token), expiresAt }]);
    await loading;
    assert.equal(await auth.session(token), undefined);
  });
});
