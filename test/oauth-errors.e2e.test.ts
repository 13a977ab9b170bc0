/**
 * The OAuth 2.0 provider refuses bad input with the protocol's own error and changes nothing: a real
 * hub, agent and device, curl as the browser, a third-party service for the redirect.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CurlBrowser, formOf } from './support/curl-browser.js';
import { authorizeUrl, consent, errorPageCode, pkce, postForm, registerClient, type Client } from './support/oauth.js';
import { addUser, startHub, tempDir } from './support/procs.js';
import { SseClient } from './support/sse-client.js';
import { ThirdPartyService } from './support/third-party.js';
import { startWorld, type World } from './support/world.js';

const CB = 'https://svc.example/cb';

describe('OAuth 2.0: bad input is refused with the right error and changes nothing', () => {
  let w: World;
  let conf: Client;
  let pub: Client;
  let browser: CurlBrowser;
  let allow: Record<string, string>;

  /** A fresh code for `client` (consent given in the browser), with its PKCE verifier. */
  async function code(client: Client, scope = 'devices:read', withPkce = true): Promise<{ code: string; verifier: string }> {
    const { verifier, challenge } = pkce();
    const loc = await consent(browser, authorizeUrl(w.hub.url, {
      response_type: 'code', client_id: client.client_id, redirect_uri: CB, scope, state: 'st',
      ...(withPkce ? { code_challenge: challenge, code_challenge_method: 'S256' } : {}),
    }), allow);
    assert.equal(loc.searchParams.get('state'), 'st');
    return { code: loc.searchParams.get('code')!, verifier };
  }

  const exchange = (client: Client, fields: Record<string, string>, basic = true) =>
    postForm(w.hub.url, '/v1/oauth/token', { grant_type: 'authorization_code', redirect_uri: CB, ...(basic ? {} : { client_id: client.client_id }), ...fields }, basic ? client : undefined);

  const grantCount = async () => ((await (await fetch(`${w.hub.url}/v1/oauth/grants`, { headers: w.auth })).json()) as { grants: unknown[] }).grants.length;

  before(async () => {
    w = await startWorld();
    conf = await registerClient(w.data.path, 'Confidential service', [CB], true);
    pub = await registerClient(w.data.path, 'Public app', [CB], false);
    browser = new CurlBrowser();
    allow = { email: w.email, password: w.password, decision: 'allow' };
  });
  after(async () => {
    browser?.close();
    await w?.stop();
  });

  it('a state altered on the way back is refused by the service, and the code it carried stays unused', async () => {
    const tp = await ThirdPartyService.start(w.hub.url, 'devices:read');
    try {
      const c = await registerClient(w.data.path, 'State checker', [tp.callbackUri], true);
      tp.clientId = c.client_id;
      tp.clientSecret = c.client_secret!;
      const page = await browser.get(`${tp.url}/connect`);
      const done = await browser.submit(formOf(page), allow, { follow: false });
      assert.equal(done.status, 303);
      const genuine = new URL(done.headers.location!);
      const tampered = new URL(genuine);
      tampered.searchParams.set('state', `${genuine.searchParams.get('state')!}x`);
      const refused = await browser.get(tampered.href);
      assert.equal(refused.status, 400);
      assert.deepEqual(JSON.parse(refused.body), { connected: false, error: 'state mismatch' });
      assert.deepEqual(tp.refused, [{ reason: 'state', code: genuine.searchParams.get('code') }]);
      // Nothing was exchanged: the genuine redirect still connects.
      const ok = await browser.get(genuine.href);
      assert.deepEqual(JSON.parse(ok.body), { connected: true, scope: 'devices:read' });
    } finally {
      await tp.close();
    }
  });

  it('a consent form whose hidden fields were altered, or that comes without its cookie, gets 403 and issues no code', async () => {
    const before = await grantCount();
    const { challenge } = pkce();
    const page = await browser.get(authorizeUrl(w.hub.url, { response_type: 'code', client_id: conf.client_id, redirect_uri: CB, scope: 'devices:read', state: 'genuine', code_challenge: challenge, code_challenge_method: 'S256' }));
    const form = formOf(page);
    const alterations: Array<Record<string, string>> = [{ state: 'forged' }, { scope: 'devices:read devices:control' }, { code_challenge: pkce().challenge }, { csrf: `${form.fields.csrf!}x` }];
    for (const altered of alterations) {
      const r = await browser.submit(form, { ...allow, ...altered }, { follow: false });
      assert.equal(r.status, 403, JSON.stringify(altered));
      assert.equal(errorPageCode(r), 'CR_ERR_OAUTH_CONSENT_EXPIRED');
      assert.equal(r.headers.location, undefined);
    }
    const noCookie = await browser.submit(form, allow, { follow: false, sendCookies: false });
    assert.equal(noCookie.status, 403);
    assert.equal(errorPageCode(noCookie), 'CR_ERR_OAUTH_CONSENT_EXPIRED');
    // A redirect URI swapped in the form is not even a request to this client: shown, never followed.
    const elsewhere = await browser.submit(form, { ...allow, redirect_uri: 'https://evil.example/cb' }, { follow: false });
    assert.equal(elsewhere.status, 400);
    assert.equal(errorPageCode(elsewhere), 'CR_ERR_OAUTH_REDIRECT_URI');
    assert.equal(elsewhere.headers.location, undefined);
    assert.equal(await grantCount(), before);
    // The untouched form still works.
    const ok = await browser.submit(form, allow, { follow: false });
    assert.equal(ok.status, 303);
    assert.equal(new URL(ok.headers.location!).searchParams.get('state'), 'genuine');
  });

  it('a wrong password shows the form again with an error and no code; the right one then goes through', async () => {
    const page = await browser.get(authorizeUrl(w.hub.url, { response_type: 'code', client_id: conf.client_id, redirect_uri: CB, scope: 'devices:read', state: 's' }));
    const wrong = await browser.submit(formOf(page), { ...allow, password: 'not the password' }, { follow: false });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, /Email or password is wrong/);
    assert.equal(wrong.headers.location, undefined);
    const huge = await browser.submit(formOf(page), { ...allow, password: 'p'.repeat(5000) }, { follow: false });
    assert.equal(huge.status, 401);
    const right = await browser.submit(formOf(wrong), allow, { follow: false });
    assert.equal(right.status, 303);
    assert.ok(new URL(right.headers.location!).searchParams.get('code'));
  });

  it('guessing passwords on the consent form hits the login limit: 429 with Retry-After, shared with POST /v1/auth', async () => {
    const page = await browser.get(authorizeUrl(w.hub.url, { response_type: 'code', client_id: conf.client_id, redirect_uri: CB, scope: 'devices:read', state: 's' }));
    const guess = { email: 'guessed@example.com', password: 'a guess', decision: 'allow' };
    let last = page;
    for (let i = 0; i < 10; i++) {
      last = await browser.submit(formOf(last), guess, { follow: false });
      assert.equal(last.status, 401, `guess ${i + 1}`);
    }
    const locked = await browser.submit(formOf(last), guess, { follow: false });
    assert.equal(locked.status, 429);
    assert.ok(Number(locked.headers['retry-after']) > 0, 'Retry-After in seconds');
    assert.match(locked.body, /Too many failed attempts/);
    assert.equal(locked.headers.location, undefined);
    const api = await fetch(`${w.hub.url}/v1/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: guess.email, password: 'another guess' }) });
    assert.equal(api.status, 429);
    assert.equal(((await api.json()) as { error: { code: string } }).error.code, 'CR_ERR_RATE_LIMITED');
  });

  it('a code_verifier that does not match is invalid_grant, and the right one still redeems the code', async () => {
    const { code: c, verifier } = await code(conf);
    const wrong = await exchange(conf, { code: c, code_verifier: pkce().verifier });
    assert.deepEqual([wrong.status, wrong.body.error], [400, 'invalid_grant']);
    assert.match(String(wrong.body.error_description), /does not match/);
    assert.equal(wrong.headers.get('cache-control'), 'no-store');
    const missing = await exchange(conf, { code: c });
    assert.deepEqual([missing.status, missing.body.error], [400, 'invalid_grant']);
    const malformed = await exchange(conf, { code: c, code_verifier: 'short' });
    assert.deepEqual([malformed.status, malformed.body.error], [400, 'invalid_request']);
    const ok = await exchange(conf, { code: c, code_verifier: verifier });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    // A verifier for a code asked without PKCE is a downgrade attempt (RFC 9700 §2.1.1).
    const plain = await code(conf, 'devices:read', false);
    const downgrade = await exchange(conf, { code: plain.code, code_verifier: pkce().verifier });
    assert.deepEqual([downgrade.status, downgrade.body.error], [400, 'invalid_grant']);
    assert.equal((await exchange(conf, { code: plain.code })).status, 200);
  });

  it('a replayed code is refused and revokes the tokens it issued', async () => {
    const { code: c, verifier } = await code(conf, 'devices:read devices:control');
    const first = await exchange(conf, { code: c, code_verifier: verifier });
    assert.equal(first.status, 200);
    const bearer = { authorization: `Bearer ${first.body.access_token as string}` };
    assert.equal((await fetch(`${w.api}/device`, { headers: bearer })).status, 200);
    const replay = await exchange(conf, { code: c, code_verifier: verifier });
    assert.deepEqual([replay.status, replay.body.error], [400, 'invalid_grant']);
    assert.equal(replay.body.access_token, undefined);
    assert.equal((await fetch(`${w.api}/device`, { headers: bearer })).status, 401);
    await w.hub.waitForLog('OAuth authorization revoked: a code or refresh token was used again', (o) => o.reason === 'authorization code used again' && o.clientId === conf.client_id);
    const refresh = await postForm(w.hub.url, '/v1/oauth/token', { grant_type: 'refresh_token', refresh_token: first.body.refresh_token as string }, conf);
    assert.deepEqual([refresh.status, refresh.body.error], [400, 'invalid_grant']);
  });

  it('a redirect URI not registered exactly gets an error page and no redirect; at the token endpoint it is invalid_grant', async () => {
    for (const uri of ['https://svc.example/cb/', 'https://svc.example/cb?x=1', 'https://evil.example/cb', undefined]) {
      const page = await browser.get(authorizeUrl(w.hub.url, { response_type: 'code', client_id: conf.client_id, redirect_uri: uri, scope: 'devices:read', state: 's' }), false);
      assert.equal(page.status, 400, String(uri));
      assert.equal(errorPageCode(page), 'CR_ERR_OAUTH_REDIRECT_URI');
      assert.equal(page.headers.location, undefined);
    }
    const unknown = await browser.get(authorizeUrl(w.hub.url, { response_type: 'code', client_id: 'oc_nobody', redirect_uri: CB, scope: 'devices:read' }), false);
    assert.deepEqual([unknown.status, errorPageCode(unknown)], [400, 'CR_ERR_OAUTH_UNKNOWN_CLIENT']);
    const { code: c, verifier } = await code(conf);
    const wrong = await exchange(conf, { code: c, code_verifier: verifier, redirect_uri: 'https://evil.example/cb' });
    assert.deepEqual([wrong.status, wrong.body.error], [400, 'invalid_grant']);
    assert.equal((await exchange(conf, { code: c, code_verifier: verifier })).status, 200);
  });

  it('a wrong client secret is 401 invalid_client with WWW-Authenticate, and the code stays usable', async () => {
    const { code: c, verifier } = await code(conf);
    const wrong = await exchange({ ...conf, client_secret: `${conf.client_secret!}x` }, { code: c, code_verifier: verifier });
    assert.deepEqual([wrong.status, wrong.body.error], [401, 'invalid_client']);
    assert.match(wrong.headers.get('www-authenticate') ?? '', /^Basic realm="cloudrest"/);
    const inBody = await postForm(w.hub.url, '/v1/oauth/token', { grant_type: 'authorization_code', redirect_uri: CB, code: c, code_verifier: verifier, client_id: conf.client_id, client_secret: 'wrong' });
    assert.deepEqual([inBody.status, inBody.body.error], [401, 'invalid_client']);
    const none = await exchange(conf, { code: c, code_verifier: verifier }, false);
    assert.deepEqual([none.status, none.body.error], [401, 'invalid_client']);
    const both = await postForm(w.hub.url, '/v1/oauth/token', { grant_type: 'authorization_code', redirect_uri: CB, code: c, code_verifier: verifier, client_secret: conf.client_secret! }, conf);
    assert.deepEqual([both.status, both.body.error], [400, 'invalid_request']);
    // Another (public) client cannot redeem it either.
    const other = await exchange(pub, { code: c, code_verifier: verifier }, false);
    assert.deepEqual([other.status, other.body.error], [400, 'invalid_grant']);
    const ok = await postForm(w.hub.url, '/v1/oauth/token', { grant_type: 'authorization_code', redirect_uri: CB, code: c, code_verifier: verifier, client_id: conf.client_id, client_secret: conf.client_secret! });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });

  it('an expired code is invalid_grant', async () => {
    const data = tempDir();
    await addUser(data.path, w.email, w.password);
    const c = await registerClient(data.path, 'Slow service', [CB], true);
    const hub = await startHub(data.path, ['--oauth-code-ttl-ms', '1000', '--no-mqtt']);
    const b = new CurlBrowser();
    try {
      const { verifier, challenge } = pkce();
      const loc = await consent(b, authorizeUrl(hub.url, { response_type: 'code', client_id: c.client_id, redirect_uri: CB, scope: 'devices:read', code_challenge: challenge, code_challenge_method: 'S256' }), allow);
      await new Promise((r) => setTimeout(r, 1100));
      const late = await postForm(hub.url, '/v1/oauth/token', { grant_type: 'authorization_code', redirect_uri: CB, code: loc.searchParams.get('code')!, code_verifier: verifier }, c);
      assert.deepEqual([late.status, late.body.error, late.body.error_description], [400, 'invalid_grant', 'the authorization code expired']);
    } finally {
      b.close();
      await hub.stop();
      data.remove();
    }
  });

  it('a token without the needed scope gets 403 CR_ERR_INSUFFICIENT_SCOPE naming the scope, on the relay, event streams and devices', async () => {
    const readOnly = await exchange(conf, await code(conf, 'devices:read').then((x) => ({ code: x.code, code_verifier: x.verifier })));
    const ro = { authorization: `Bearer ${readOnly.body.access_token as string}` };
    assert.equal((await fetch(`${w.hub.url}/v1/devices`, { headers: ro })).status, 200);
    const relay = await fetch(`${w.api}/device`, { headers: ro });
    assert.equal(relay.status, 403);
    assert.equal(((await relay.json()) as { error: { code: string } }).error.code, 'CR_ERR_INSUFFICIENT_SCOPE');
    assert.equal(relay.headers.get('www-authenticate'), 'Bearer error="insufficient_scope", scope="devices:control"');
    const put = await fetch(`${w.api}/echo`, { method: 'PUT', headers: ro, body: 'x' });
    assert.equal(put.status, 403);
    const sse = await SseClient.open(`${w.hub.url}/v1/events`, ro);
    sse.close();
    assert.equal(sse.status, 403);
    const byQuery = await fetch(`${w.hub.url}/v1/devices/${w.deviceId}/events?access_token=${readOnly.body.access_token as string}`);
    assert.equal(byQuery.status, 403);
    assert.match(byQuery.headers.get('www-authenticate') ?? '', /scope="events:read"/);

    const control = await exchange(conf, await code(conf, 'devices:control').then((x) => ({ code: x.code, code_verifier: x.verifier })));
    const ctl = { authorization: `Bearer ${control.body.access_token as string}` };
    assert.equal((await fetch(`${w.api}/device`, { headers: ctl })).status, 200);
    for (const path of ['/v1/devices', '/v1/devices/list', `/v1/devices/${w.deviceId}`]) {
      const r = await fetch(`${w.hub.url}${path}`, { headers: ctl });
      assert.equal(r.status, 403, path);
      assert.deepEqual((await r.json()) as unknown, { error: { code: 'CR_ERR_INSUFFICIENT_SCOPE', status: 403, message: 'this request needs the devices:read scope' } });
    }
  });

  it('oversized fields and bodies are refused with the protocol error, and nothing is granted', async () => {
    const before = await grantCount();
    const { code: c, verifier } = await code(conf);
    const huge = await exchange(conf, { code: 'c'.repeat(10_000), code_verifier: verifier });
    assert.deepEqual([huge.status, huge.body.error], [400, 'invalid_request']);
    const body = await exchange(conf, { code: c, code_verifier: verifier, padding: 'p'.repeat(20_000) });
    assert.deepEqual([body.status, body.body.error], [413, 'invalid_request']);
    const token = await postForm(w.hub.url, '/v1/oauth/token/validate', { token: 't'.repeat(10_000) }, conf);
    assert.deepEqual([token.status, token.body.error], [400, 'invalid_request']);
    const basic = await postForm(w.hub.url, '/v1/oauth/token', { grant_type: 'authorization_code', code: c }, { client_id: conf.client_id, client_secret: 's'.repeat(5000) });
    assert.deepEqual([basic.status, basic.body.error], [400, 'invalid_request']);
    const secret = await postForm(w.hub.url, '/v1/oauth/token', { grant_type: 'authorization_code', code: c, client_id: conf.client_id, client_secret: 's'.repeat(5000) });
    assert.deepEqual([secret.status, secret.body.error], [401, 'invalid_client']);

    // An oversized state is refused back to the client without being echoed.
    const bigState = await browser.get(authorizeUrl(w.hub.url, { response_type: 'code', client_id: conf.client_id, redirect_uri: CB, scope: 'devices:read', state: 's'.repeat(600) }), false);
    assert.equal(bigState.status, 302);
    const loc = new URL(bigState.headers.location!);
    assert.deepEqual([loc.searchParams.get('error'), loc.searchParams.has('state')], ['invalid_request', false]);
    const validate = await fetch(`${w.hub.url}/v1/oauth/authorize/validate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_id: conf.client_id, redirect_uri: 'x'.repeat(3000) }) });
    assert.deepEqual([validate.status, ((await validate.json()) as { error: { code: string } }).error.code], [400, 'CR_ERR_VALIDATION']);
    const bigJson = await fetch(`${w.hub.url}/v1/oauth/authorize/validate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_id: 'x'.repeat(20_000) }) });
    assert.deepEqual([bigJson.status, ((await bigJson.json()) as { error: { code: string } }).error.code], [413, 'CR_ERR_BODY_TOO_LARGE']);
    assert.equal(await grantCount(), before);
    assert.equal((await exchange(conf, { code: c, code_verifier: verifier })).status, 200);
  });

  it('malformed token requests get RFC 6749 errors: unknown grant type, repeated or missing parameters, a JSON body', async () => {
    const { code: c, verifier } = await code(conf);
    const unknown = await exchange(conf, { grant_type: 'password', code: c });
    assert.deepEqual([unknown.status, unknown.body.error], [400, 'unsupported_grant_type']);
    const repeated = await fetch(`${w.hub.url}/v1/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${conf.client_id}:${conf.client_secret!}`).toString('base64')}` },
      body: `grant_type=authorization_code&code=${c}&code=${c}&redirect_uri=${encodeURIComponent(CB)}&code_verifier=${verifier}`,
    });
    assert.deepEqual([repeated.status, ((await repeated.json()) as { error: string }).error], [400, 'invalid_request']);
    const json = await fetch(`${w.hub.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ grant_type: 'authorization_code', code: c, client_id: conf.client_id }) });
    assert.deepEqual([json.status, ((await json.json()) as { error: string }).error], [400, 'invalid_request']);
    const noCode = await exchange(conf, { code_verifier: verifier });
    assert.deepEqual([noCode.status, noCode.body.error, noCode.body.error_description], [400, 'invalid_request', 'code is missing']);
    const noToken = await postForm(w.hub.url, '/v1/oauth/revoke', {}, conf);
    assert.deepEqual([noToken.status, noToken.body.error], [400, 'invalid_request']);
    const bogus = await exchange(conf, { code: 'cro.ac.not-a-real-code', code_verifier: verifier });
    assert.deepEqual([bogus.status, bogus.body.error], [400, 'invalid_grant']);
    assert.equal((await exchange(conf, { code: c, code_verifier: verifier })).status, 200);
  });

  it('plain PKCE, a public client without PKCE, an unknown scope or response type go back to the client as errors, with its state', async () => {
    const { challenge } = pkce();
    const cases: Array<[Record<string, string>, string, RegExp]> = [
      [{ client_id: pub.client_id, code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }, 'invalid_request', /plain/],
      [{ client_id: pub.client_id }, 'invalid_request', /PKCE is required/],
      [{ client_id: conf.client_id, scope: 'devices:read admin' }, 'invalid_scope', /scope/],
      [{ client_id: conf.client_id, response_type: 'token' }, 'unsupported_response_type', /code/],
      [{ client_id: pub.client_id, code_challenge: challenge }, 'invalid_request', /S256/],
    ];
    for (const [over, error, why] of cases) {
      const page = await browser.get(authorizeUrl(w.hub.url, { response_type: 'code', redirect_uri: CB, scope: 'devices:read', state: 'keep-me', ...over }), false);
      assert.equal(page.status, 302, JSON.stringify(over));
      const loc = new URL(page.headers.location!);
      assert.equal(`${loc.origin}${loc.pathname}`, CB);
      assert.equal(loc.searchParams.get('error'), error, JSON.stringify(over));
      assert.match(loc.searchParams.get('error_description') ?? '', why);
      assert.equal(loc.searchParams.get('state'), 'keep-me');
      assert.equal(loc.searchParams.get('iss'), w.hub.url);
      assert.equal(loc.searchParams.has('code'), false);
    }
  });

  it('the JSON consent endpoint takes only first-party tokens and bounded fields', async () => {
    const { challenge } = pkce();
    const request = { response_type: 'code', client_id: pub.client_id, redirect_uri: CB, scope: 'devices:read', code_challenge: challenge, code_challenge_method: 'S256', decision: 'allow' };
    const post = (body: unknown, headers: Record<string, string> = w.auth) => fetch(`${w.hub.url}/v1/oauth/authorize`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    const errCode = async (r: Response) => ((await r.json()) as { error: { code: string } }).error.code;
    const anon = await post(request, {});
    assert.deepEqual([anon.status, await errCode(anon)], [401, 'CR_ERR_UNAUTHORIZED']);
    const granted = await code(conf);
    const scoped = await exchange(conf, { code: granted.code, code_verifier: granted.verifier });
    const viaOAuth = await post(request, { authorization: `Bearer ${scoped.body.access_token as string}` });
    assert.deepEqual([viaOAuth.status, await errCode(viaOAuth)], [403, 'CR_ERR_INSUFFICIENT_SCOPE']);
    const badDecision = await post({ ...request, decision: 'maybe' });
    assert.deepEqual([badDecision.status, await errCode(badDecision)], [400, 'CR_ERR_VALIDATION']);
    const extra = await post({ ...request, admin: true });
    assert.deepEqual([extra.status, await errCode(extra)], [400, 'CR_ERR_VALIDATION']);
    const notString = await post({ ...request, state: 42 });
    assert.deepEqual([notString.status, await errCode(notString)], [400, 'CR_ERR_VALIDATION']);
    const wrongUri = await post({ ...request, redirect_uri: 'https://evil.example/cb' });
    assert.deepEqual([wrongUri.status, await errCode(wrongUri)], [400, 'CR_ERR_OAUTH_REDIRECT_URI']);
    const deny = await post({ ...request, decision: 'deny', state: 'd' });
    const to = new URL(((await deny.json()) as { redirect_to: string }).redirect_to);
    assert.deepEqual([to.searchParams.get('error'), to.searchParams.get('state'), to.searchParams.has('code')], ['access_denied', 'd', false]);
  });
});
