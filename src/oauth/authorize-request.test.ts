import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { checkAuthorizationRequest, type AuthorizationCheck } from './authorize-request.js';
import { consentPage } from './consent-page.js';
import { Params } from './params.js';

const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';
const CB = 'https://svc.example/cb';

describe('authorization request checks', () => {
  let store: SqliteStore;
  before(async () => {
    store = SqliteStore.open(':memory:');
    await store.migrate();
    await store.createOAuthClient({ id: 'oc_conf', name: 'Service <b>&</b>', redirectUris: [CB], secretHash: 'h'.repeat(64), createdAt: 1 });
    await store.createOAuthClient({ id: 'oc_pub', name: 'App', redirectUris: [CB], secretHash: null, createdAt: 2 });
  });
  after(() => store.close());

  const base = { response_type: 'code', client_id: 'oc_pub', redirect_uri: CB, scope: 'devices:read', state: 's1', code_challenge: CHALLENGE, code_challenge_method: 'S256' };
  const check = (over: Record<string, string | undefined>, extra = ''): Promise<AuthorizationCheck> => {
    const q = new URLSearchParams(Object.entries({ ...base, ...over }).filter((e): e is [string, string] => e[1] !== undefined));
    return checkAuthorizationRequest(store, new Params(q.toString() + extra));
  };

  it('accepts a complete request with PKCE S256', async () => {
    const c = await check({});
    assert.ok(c.ok);
    assert.deepEqual(c.request, { clientId: 'oc_pub', redirectUri: CB, scopes: ['devices:read'], state: 's1', codeChallenge: CHALLENGE });
  });

  it('shows, never redirects, an unknown client or a redirect URI that does not match exactly', async () => {
    for (const [over, code] of [
      [{ client_id: 'oc_nope' }, 'CR_ERR_OAUTH_UNKNOWN_CLIENT'],
      [{ client_id: undefined }, 'CR_ERR_OAUTH_UNKNOWN_CLIENT'],
      [{ client_id: 'x'.repeat(65) }, 'CR_ERR_OAUTH_UNKNOWN_CLIENT'],
      [{ redirect_uri: undefined }, 'CR_ERR_OAUTH_REDIRECT_URI'],
      [{ redirect_uri: `${CB}/` }, 'CR_ERR_OAUTH_REDIRECT_URI'],
      [{ redirect_uri: `${CB}?x=1` }, 'CR_ERR_OAUTH_REDIRECT_URI'],
      [{ redirect_uri: 'https://SVC.example/cb' }, 'CR_ERR_OAUTH_REDIRECT_URI'],
      [{ redirect_uri: 'https://evil.example/cb' }, 'CR_ERR_OAUTH_REDIRECT_URI'],
    ] as const) {
      const c = await check(over);
      assert.ok(!c.ok && !c.redirect, JSON.stringify(over));
      assert.equal(c.code, code, JSON.stringify(over));
    }
    const twice = await check({}, `&redirect_uri=${encodeURIComponent('https://evil.example/cb')}`);
    assert.ok(!twice.ok && !twice.redirect && twice.code === 'CR_ERR_OAUTH_REDIRECT_URI');
  });

  it('sends other errors back to the client, with its state', async () => {
    for (const [over, error, why] of [
      [{ response_type: 'token' }, 'unsupported_response_type', /code/],
      [{ response_type: undefined }, 'invalid_request', /response_type/],
      [{ scope: undefined }, 'invalid_scope', /scope/],
      [{ scope: 'devices:read admin' }, 'invalid_scope', /scope/],
      [{ code_challenge_method: 'plain' }, 'invalid_request', /plain/],
      [{ code_challenge_method: undefined }, 'invalid_request', /S256 is required/],
      [{ code_challenge: undefined }, 'invalid_request', /without code_challenge/],
      [{ code_challenge: undefined, code_challenge_method: undefined }, 'invalid_request', /PKCE is required for public clients/],
      [{ code_challenge: 'short' }, 'invalid_request', /43 base64url/],
    ] as const) {
      const c = await check(over);
      assert.ok(!c.ok && c.redirect, JSON.stringify(over));
      assert.equal(c.error, error, JSON.stringify(over));
      assert.match(c.description, why);
      assert.equal(c.state, 's1');
      assert.equal(c.redirectUri, CB);
    }
  });

  it('lets a confidential client go without PKCE, but never with plain', async () => {
    assert.ok((await check({ client_id: 'oc_conf', code_challenge: undefined, code_challenge_method: undefined })).ok);
    const plain = await check({ client_id: 'oc_conf', code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' });
    assert.ok(!plain.ok && plain.redirect && plain.error === 'invalid_request');
  });

  it('refuses an oversized or repeated state without echoing it, and any repeated parameter', async () => {
    const big = await check({ state: 's'.repeat(513) });
    assert.ok(!big.ok && big.redirect && big.error === 'invalid_request' && big.state === undefined);
    const rep = await check({}, '&scope=events:read');
    assert.ok(!rep.ok && rep.redirect && rep.error === 'invalid_request' && /scope/.test(rep.description));
  });

  it('escapes the client name and every field on the consent page', async () => {
    const c = await check({ client_id: 'oc_conf', state: '"><script>alert(1)</script>' });
    assert.ok(c.ok);
    const html = consentPage({ client: c.client, request: c.request, csrf: 't' });
    assert.ok(!html.includes('<script>'));
    assert.ok(!html.includes('<b>&</b>'));
    assert.ok(html.includes('Service &#60;b&#62;&#38;&#60;/b&#62;'));
    assert.ok(html.includes('value="&#34;&#62;&#60;script&#62;alert(1)&#60;/script&#62;"'));
  });
});
