// What an OAuth access token costs on the relay's hot path: Authenticator.session() on a cache hit
// plus the scope check src/relay/forward.ts makes, against a first-party token (the baseline) in the
// same run. Both are one LRU lookup; the OAuth one also reads a Set.
//
//   node --import tsx bench/oauth/session-hit.ts        (BENCH_N=2000000 lookups per case, 3 rounds)
import { pino } from 'pino';
import { sha256Hex } from '../../src/core/secrets.js';
import { Authenticator } from '../../src/core/auth/authenticator.js';
import { OAuthService } from '../../src/oauth/oauth-service.js';
import { Params } from '../../src/oauth/params.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

const N = Number(process.env.BENCH_N ?? 2_000_000);
const CB = 'https://svc.example/cb';

const store = SqliteStore.open(':memory:');
await store.migrate();
await store.createUser({ id: 'u_1', email: 'bench@example.com', passwordHash: 'x' });
await store.createOAuthClient({ id: 'oc_1', name: 'Bench', redirectUris: [CB], secretHash: null, createdAt: 1 });
const auth = new Authenticator(store, { tokenTtlMs: 3_600_000, rememberTokenTtlMs: 3_600_000, cacheTtlMs: 3_600_000 });
const oauth = new OAuthService({ store, auth, log: pino({ level: 'silent' }), issuer: () => 'https://hub.example' }, { codeTtlMs: 60_000, accessTokenTtlMs: 3_600_000, refreshTokenTtlMs: 3_600_000 });
const user = (await store.getUserById('u_1'))!;
const code = await oauth.grantCode(user, { clientId: 'oc_1', redirectUri: CB, scopes: ['devices:control'], state: undefined, codeChallenge: undefined });
const { access_token: oauthToken } = await oauth.exchangeCode((await store.getOAuthClient('oc_1'))!, new Params(new URLSearchParams({ code, redirect_uri: CB }).toString()));
const firstParty = 'a-first-party-token';
await store.createToken({ tokenHash: sha256Hex(firstParty), userId: 'u_1', createdAt: Date.now(), expiresAt: Date.now() + 3_600_000 });
await auth.session(oauthToken);
await auth.session(firstParty);

function run(token: string): number {
  let allowed = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const s = auth.session(token);
    if (s instanceof Promise || s === undefined) throw new Error('not a cache hit');
    if (s.scopes === undefined || s.scopes.has('devices:control')) allowed++;
  }
  const ns = Number(process.hrtime.bigint() - t0) / N;
  if (allowed !== N) throw new Error('scope check refused');
  return ns;
}

console.log('| round | first-party token (ns/lookup) | OAuth access token (ns/lookup) |');
console.log('|---|---|---|');
for (let round = 1; round <= 3; round++) console.log(`| ${round} | ${run(firstParty).toFixed(1)} | ${run(oauthToken).toFixed(1)} |`);
await store.close();
