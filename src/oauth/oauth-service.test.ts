import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Authenticator, type Session } from '../core/auth/authenticator.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { OAuthService } from './oauth-service.js';
import { Params } from './params.js';

const CB = 'https://svc.example/cb';

describe('OAuth sessions in the Authenticator', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cloudrest-oauth-'));
  const file = join(dir, 'hub.db');
  let store: SqliteStore;
  let auth: Authenticator;
  let service: OAuthService;

  before(async () => {
    store = SqliteStore.open(file);
    await store.migrate();
    await store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'x' });
    await store.createOAuthClient({ id: 'oc_1', name: 'Svc', redirectUris: [CB], secretHash: null, createdAt: 1 });
    auth = new Authenticator(store, { tokenTtlMs: 60_000, rememberTokenTtlMs: 60_000, cacheTtlMs: 60_000 });
    service = new OAuthService({ store, auth, log: pino({ level: 'silent' }), issuer: () => 'https://hub.example' }, { codeTtlMs: 60_000, accessTokenTtlMs: 3_600_000, refreshTokenTtlMs: 86_400_000 });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function tokens(scope: 'devices:read' | 'events:read'): Promise<{ access_token: string }> {
    const user = (await store.getUserById('u_1'))!;
    const code = await service.grantCode(user, { clientId: 'oc_1', redirectUri: CB, scopes: [scope], state: undefined, codeChallenge: undefined });
    const client = (await store.getOAuthClient('oc_1'))!;
    return service.exchangeCode(client, new Params(new URLSearchParams({ code, redirect_uri: CB }).toString()));
  }

  it('resolves an access token to a scoped session, synchronously once cached', async () => {
    const { access_token } = await tokens('devices:read');
    const first = auth.session(access_token);
    assert.ok(first instanceof Promise);
    const s = (await first)!;
    assert.deepEqual([...s.scopes!], ['devices:read']);
    assert.equal(s.user.id, 'u_1');
    assert.equal(s.oauth?.clientId, 'oc_1');
    const hit = auth.session(access_token);
    assert.ok(!(hit instanceof Promise));
    assert.equal((hit as Session).oauth?.familyId, s.oauth?.familyId);
  });

  it('reads a session again when an eviction ran while it was being read, and caches only that fresh read', async () => {
    const { access_token } = await tokens('devices:read');
    let reads = 0;
    const read = store.getOAuthToken;
    store.getOAuthToken = (hash) => {
      reads++;
      return read(hash);
    };
    try {
      const loading = auth.session(access_token);
      assert.ok(loading instanceof Promise);
      auth.forgetSessions(() => false);
      assert.ok(await loading);
      assert.equal(reads, 2, 'read again from the Store after the eviction');
      assert.ok(!(auth.session(access_token) instanceof Promise), 'the undisturbed second read is cached');
    } finally {
      store.getOAuthToken = read;
    }
  });

  it('forgets a revoked family at once, and a client removed by another process after the next poll', async () => {
    const a = await tokens('devices:read');
    const b = await tokens('events:read');
    await auth.session(a.access_token);
    await auth.session(b.access_token);
    const client = (await store.getOAuthClient('oc_1'))!;
    await service.revoke(client, a.access_token);
    assert.equal(await auth.session(a.access_token), undefined);
    assert.ok(!(auth.session(b.access_token) instanceof Promise));

    // The CLI is another process with its own connection to the same database.
    const cli = SqliteStore.open(file);
    try {
      assert.equal(await cli.deleteOAuthClient('oc_1', Date.now()), true);
    } finally {
      await cli.close();
    }
    assert.ok(auth.session(b.access_token), 'still cached until the revocation log is read');
    await service.pollRevocations();
    assert.equal(await auth.session(b.access_token), undefined);
  });
});
