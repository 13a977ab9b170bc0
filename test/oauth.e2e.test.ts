/**
 * The OAuth 2.0 provider end to end, as a third-party (IFTTT-style) service uses it: a real hub, agent
 * and device; the CLI registering the service; the service's own HTTP server receiving the redirect;
 * curl as the user's browser on the login and consent page.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { runClient } from './support/mqtt-peers.js';
import { CurlBrowser, formOf } from './support/curl-browser.js';
import { pkce, postForm, registerClient, type Client } from './support/oauth.js';
import { cli, login } from './support/procs.js';
import { SseClient } from './support/sse-client.js';
import { ThirdPartyService } from './support/third-party.js';
import { startWorld, type World } from './support/world.js';

describe("OAuth 2.0: a third-party service connects to a user's devices", () => {
  let w: World;
  let tp: ThirdPartyService;
  let client: Client;
  let browser: CurlBrowser;

  /** The user connects the service in their browser: the service's /connect, the hub's page, back. */
  async function connect(): Promise<{ connected: boolean; scope?: string; error?: string }> {
    const page = await browser.get(`${tp.url}/connect`);
    assert.equal(page.status, 200, page.body.slice(0, 300));
    assert.ok(page.url.startsWith(`${w.hub.url}/v1/oauth/authorize?`), page.url);
    const done = await browser.submit(formOf(page), { email: w.email, password: w.password, decision: 'allow' });
    assert.ok(done.url.startsWith(`${tp.callbackUri}?`), done.url);
    return JSON.parse(done.body) as { connected: boolean; scope?: string };
  }

  before(async () => {
    w = await startWorld();
    tp = await ThirdPartyService.start(w.hub.url, 'devices:read devices:control events:read');
    client = await registerClient(w.data.path, 'Home automations', [tp.callbackUri], true);
    tp.clientId = client.client_id;
    tp.clientSecret = client.client_secret!;
    browser = new CurlBrowser();
  });
  after(async () => {
    browser?.close();
    await tp?.close();
    await w?.stop();
  });

  it('publishes authorization server metadata (RFC 8414) naming every endpoint', async () => {
    const r = await fetch(`${w.hub.url}/.well-known/oauth-authorization-server`);
    assert.equal(r.status, 200);
    const m = (await r.json()) as Record<string, unknown>;
    assert.equal(m.issuer, w.hub.url);
    assert.equal(m.authorization_endpoint, `${w.hub.url}/v1/oauth/authorize`);
    assert.equal(m.token_endpoint, `${w.hub.url}/v1/oauth/token`);
    assert.equal(m.introspection_endpoint, `${w.hub.url}/v1/oauth/token/validate`);
    assert.equal(m.revocation_endpoint, `${w.hub.url}/v1/oauth/revoke`);
    assert.deepEqual(m.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(m.scopes_supported, ['devices:read', 'devices:control', 'events:read']);
    assert.deepEqual(m.grant_types_supported, ['authorization_code', 'refresh_token']);
  });

  it('registers the service with the CLI: the secret is shown once, never listed, and stored only as a hash', async () => {
    assert.match(client.client_id, /^oc_[a-z2-7]{16}$/);
    assert.match(client.client_secret!, /^cro\.cs\.[A-Za-z0-9_-]{43}$/);
    const list = JSON.parse(await cli(['oauth-clients', 'list', '--data', w.data.path, '--json'])) as Array<Record<string, unknown>>;
    assert.deepEqual(list.map((c) => [c.client_id, c.name, c.type, c.redirect_uris]), [[client.client_id, 'Home automations', 'confidential', [tp.callbackUri]]]);
    assert.ok(!JSON.stringify(list).includes(client.client_secret!));
    const db = new Database(join(w.data.path, 'cloudrest.db'), { readonly: true });
    const row = db.prepare('select secret_hash from oauth_clients where id = ?').get(client.client_id) as { secret_hash: string };
    db.close();
    assert.match(row.secret_hash, /^[0-9a-f]{64}$/);
    assert.ok(!row.secret_hash.includes(client.client_secret!));
  });

  it('walks the whole flow: login and consent in the browser, code exchanged with PKCE, then devices, the device API and events with the token', async () => {
    const page = await browser.get(`${tp.url}/connect`);
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type'] ?? '', /^text\/html/);
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.match(page.body, /Home automations<\/strong> wants to access your cloudrest account/);
    for (const s of ['devices:read', 'devices:control', 'events:read']) assert.ok(page.body.includes(`<code>${s}</code>`), s);
    const form = formOf(page);
    assert.equal(form.fields.client_id, client.client_id);
    assert.equal(form.fields.code_challenge_method, 'S256');
    assert.ok(form.fields.csrf);

    const done = await browser.submit(form, { email: w.email, password: w.password, decision: 'allow' });
    assert.equal(done.status, 200, done.body);
    assert.deepEqual(JSON.parse(done.body), { connected: true, scope: 'devices:read devices:control events:read' });
    const t = tp.tokens();
    assert.equal(t.token_type, 'Bearer');
    assert.equal(t.expires_in, 3600);
    assert.match(t.access_token, /^cro\.at\./);
    assert.match(t.refresh_token, /^cro\.rt\./);

    const devices = await tp.callHub('/v1/devices');
    assert.equal(devices.status, 200);
    const list = (await devices.json()) as { devices: Array<{ id: string; online: boolean }> };
    assert.deepEqual(list.devices.map((d) => [d.id, d.online]), [[w.deviceId, true]]);
    const one = await tp.callHub(`/v1/devices/${w.deviceId}`);
    assert.equal(one.status, 200);

    const relayed = await tp.callHub(`/v1/devices/${w.deviceId}/api/device`);
    assert.equal(relayed.status, 200);
    assert.equal(((await relayed.json()) as { name: string }).name, 'Demo thermostat');
    const echo = await tp.callHub(`/v1/devices/${w.deviceId}/api/echo`, { method: 'POST', body: 'set 21' });
    const seen = (await echo.json()) as { method: string; size: number; headers: Record<string, string> };
    assert.deepEqual([seen.method, seen.size, seen.headers.authorization], ['POST', 6, undefined]);

    const sse = await SseClient.open(`${w.hub.url}/v1/events`, { authorization: `Bearer ${t.access_token}` });
    try {
      assert.equal(sse.status, 200);
      await sse.until((events) => events.some((e) => e.event === 'status' && e.data.includes(w.deviceId)));
    } finally {
      sse.close();
    }

    const db = new Database(join(w.data.path, 'cloudrest.db'), { readonly: true });
    const hashes = db.prepare('select token_hash from oauth_tokens').all() as Array<{ token_hash: string }>;
    const codes = db.prepare('select code_hash, used_at from oauth_codes').all() as Array<{ code_hash: string; used_at: number | null }>;
    db.close();
    assert.ok(hashes.length >= 2 && hashes.every((h) => /^[0-9a-f]{64}$/.test(h.token_hash)));
    assert.ok(!hashes.some((h) => h.token_hash === t.access_token || h.token_hash === t.refresh_token));
    assert.ok(codes.length >= 1 && codes.every((c) => /^[0-9a-f]{64}$/.test(c.code_hash) && c.used_at !== null));
  });

  it('refreshes the token (rotation); the old refresh token used again revokes the whole authorization', async () => {
    const first = tp.tokens();
    const r = await tp.refresh();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const second = tp.tokens();
    assert.notEqual(second.access_token, first.access_token);
    assert.notEqual(second.refresh_token, first.refresh_token);
    assert.equal(second.scope, 'devices:read devices:control events:read');
    assert.equal((await tp.callHub('/v1/devices')).status, 200);

    // A refresh may narrow the scope (RFC 6749 §6), never widen it.
    const widen = await tp.postForm('/v1/oauth/token', { grant_type: 'refresh_token', refresh_token: second.refresh_token, scope: 'devices:read admin' });
    assert.deepEqual([widen.status, widen.body.error], [400, 'invalid_scope']);
    const narrow = await tp.postForm('/v1/oauth/token', { grant_type: 'refresh_token', refresh_token: second.refresh_token, scope: 'devices:read' });
    assert.equal(narrow.status, 200, JSON.stringify(narrow.body));
    assert.equal(narrow.body.scope, 'devices:read');
    const narrowBearer = { authorization: `Bearer ${narrow.body.access_token as string}` };
    assert.equal((await fetch(`${w.hub.url}/v1/devices`, { headers: narrowBearer })).status, 200);
    assert.equal((await fetch(`${w.hub.url}/v1/devices/${w.deviceId}/api/device`, { headers: narrowBearer })).status, 403);

    // `first` was replaced two refreshes ago: presenting it again is reuse (RFC 9700 §4.14.2).
    const reuse = await tp.refresh(first.refresh_token);
    assert.equal(reuse.status, 400);
    assert.equal(reuse.body.error, 'invalid_grant');
    assert.match(String(reuse.body.error_description), /already used/);
    assert.equal((await tp.refresh(second.refresh_token)).body.error, 'invalid_grant');
    // Every token of the family is gone at once, the newest ones included.
    assert.equal((await tp.callHub('/v1/devices')).status, 401);
    assert.equal((await fetch(`${w.hub.url}/v1/devices`, { headers: narrowBearer })).status, 401);
    assert.equal((await tp.refresh(narrow.body.refresh_token as string)).body.error, 'invalid_grant');
  });

  it('introspects a token for its own client only (RFC 7662), and revocation (RFC 7009) stops it at once', async () => {
    assert.deepEqual(await connect(), { connected: true, scope: 'devices:read devices:control events:read' });
    const t = tp.tokens();
    const before = Math.floor(Date.now() / 1000);
    const info = await tp.postForm('/v1/oauth/token/validate', { token: t.access_token, token_type_hint: 'access_token' });
    assert.equal(info.status, 200);
    assert.equal(info.body.active, true);
    assert.equal(info.body.client_id, client.client_id);
    assert.equal(info.body.username, w.email);
    assert.equal(info.body.scope, 'devices:read devices:control events:read');
    assert.equal(info.body.token_type, 'Bearer');
    assert.equal(info.body.iss, w.hub.url);
    assert.ok(Math.abs((info.body.exp as number) - (before + 3600)) <= 5);
    assert.equal((await tp.postForm('/v1/oauth/token/validate', { token: t.refresh_token })).body.active, true);

    // Another client learns nothing about this client's token, and a first-party token is not an OAuth token.
    const other = await registerClient(w.data.path, 'Other service', ['https://other.example/cb'], true);
    assert.deepEqual((await postForm(w.hub.url, '/v1/oauth/token/validate', { token: t.access_token }, other)).body, { active: false });
    assert.deepEqual((await tp.postForm('/v1/oauth/token/validate', { token: w.token })).body, { active: false });
    // ...and cannot revoke it (RFC 7009 §2.1).
    const foreign = await postForm(w.hub.url, '/v1/oauth/revoke', { token: t.access_token }, other);
    assert.deepEqual([foreign.status, foreign.body.error], [400, 'invalid_grant']);
    assert.equal((await tp.callHub('/v1/devices')).status, 200);

    const sse = await SseClient.open(`${w.hub.url}/v1/events`, { authorization: `Bearer ${t.access_token}` });
    await sse.until((e) => e.some((x) => x.event === 'status'));
    const revoked = await tp.postForm('/v1/oauth/revoke', { token: t.access_token, token_type_hint: 'access_token' });
    assert.equal(revoked.status, 200);
    await assert.rejects(sse.until(() => false, 5_000), /stream ended/, 'the revoked token\'s event stream ends');
    assert.equal((await tp.callHub('/v1/devices')).status, 401);
    assert.equal((await tp.callHub(`/v1/devices/${w.deviceId}/api/device`)).status, 401);
    assert.deepEqual((await tp.postForm('/v1/oauth/token/validate', { token: t.access_token })).body, { active: false });
    // The refresh token went with it, and revoking an unknown token is not an error (RFC 7009 §2.2).
    assert.equal((await tp.refresh()).body.error, 'invalid_grant');
    assert.equal((await tp.postForm('/v1/oauth/revoke', { token: 'cro.at.unknown' })).status, 200);
  });

  it('lets the user list the integrations they granted and revoke one, which stops its tokens at once', async () => {
    await connect();
    const t = tp.tokens();
    assert.equal((await tp.callHub(`/v1/devices/${w.deviceId}/api/device`)).status, 200);
    const list = await fetch(`${w.hub.url}/v1/oauth/grants`, { headers: w.auth });
    assert.equal(list.status, 200);
    const { grants } = (await list.json()) as { grants: Array<{ client_id: string; client_name: string; scope: string; scopes: Array<{ name: string }> }> };
    assert.deepEqual(grants.map((g) => [g.client_id, g.client_name, g.scope]), [[client.client_id, 'Home automations', 'devices:read devices:control events:read']]);
    assert.deepEqual(grants[0]!.scopes.map((s) => s.name), ['devices:read', 'devices:control', 'events:read']);

    const sse = await SseClient.open(`${w.hub.url}/v1/events`, { authorization: `Bearer ${t.access_token}` });
    assert.equal(sse.status, 200);
    await sse.until((e) => e.some((x) => x.event === 'status'));
    const del = await fetch(`${w.hub.url}/v1/oauth/grants/${client.client_id}`, { method: 'DELETE', headers: w.auth });
    assert.equal(del.status, 204);
    // The service's open event stream ends with its consent, not when it next reconnects.
    await assert.rejects(sse.until(() => false, 5_000), /stream ended/);
    assert.equal((await tp.callHub(`/v1/devices/${w.deviceId}/api/device`)).status, 401);
    assert.equal((await tp.callHub('/v1/devices')).status, 401);
    assert.equal((await tp.refresh()).body.error, 'invalid_grant');
    const after = (await (await fetch(`${w.hub.url}/v1/oauth/grants`, { headers: w.auth })).json()) as { grants: unknown[] };
    assert.deepEqual(after.grants, []);
    const again = await fetch(`${w.hub.url}/v1/oauth/grants/${client.client_id}`, { method: 'DELETE', headers: w.auth });
    assert.equal(again.status, 404);
    assert.equal(((await again.json()) as { error: { code: string } }).error.code, 'CR_ERR_NOT_FOUND');
  });

  it("lets a first-party app validate a request and consent with the user's token; a public client redeems the code with PKCE alone", async () => {
    const app = await registerClient(w.data.path, 'Phone app', ['com.example.phone:/oauth'], false);
    assert.equal(app.client_secret, undefined);
    const { verifier, challenge } = pkce();
    const request = { response_type: 'code', client_id: app.client_id, redirect_uri: 'com.example.phone:/oauth', scope: 'events:read', state: 'st-1', code_challenge: challenge, code_challenge_method: 'S256' };
    const v = await fetch(`${w.hub.url}/v1/oauth/authorize/validate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
    assert.equal(v.status, 200);
    assert.deepEqual(await v.json(), {
      client: { id: app.client_id, name: 'Phone app' },
      redirect_uri: 'com.example.phone:/oauth',
      scope: 'events:read',
      scopes: [{ name: 'events:read', description: "Receive your devices' notifications and when they go online or offline" }],
      state: 'st-1',
    });
    const badScope = await fetch(`${w.hub.url}/v1/oauth/authorize/validate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...request, scope: 'admin' }) });
    assert.deepEqual([badScope.status, ((await badScope.json()) as { error: { code: string } }).error.code], [400, 'CR_ERR_OAUTH_INVALID_SCOPE']);

    const granted = await fetch(`${w.hub.url}/v1/oauth/authorize`, { method: 'POST', headers: { 'content-type': 'application/json', ...w.auth }, body: JSON.stringify({ ...request, decision: 'allow' }) });
    assert.equal(granted.status, 200);
    const to = new URL(((await granted.json()) as { redirect_to: string }).redirect_to);
    assert.equal(`${to.protocol}${to.pathname}`, 'com.example.phone:/oauth');
    assert.equal(to.searchParams.get('state'), 'st-1');
    assert.equal(to.searchParams.get('iss'), w.hub.url);
    const code = to.searchParams.get('code')!;

    const noVerifier = await postForm(w.hub.url, '/v1/oauth/token', { grant_type: 'authorization_code', code, redirect_uri: 'com.example.phone:/oauth', client_id: app.client_id });
    assert.deepEqual([noVerifier.status, noVerifier.body.error], [400, 'invalid_grant']);
    const tokens = await postForm(w.hub.url, '/v1/oauth/token', { grant_type: 'authorization_code', code, redirect_uri: 'com.example.phone:/oauth', client_id: app.client_id, code_verifier: verifier });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    assert.equal(tokens.body.scope, 'events:read');
    const bearer = { authorization: `Bearer ${tokens.body.access_token as string}` };
    const sse = await SseClient.open(`${w.hub.url}/v1/devices/${w.deviceId}/events`, bearer);
    try {
      assert.equal(sse.status, 200);
      await sse.until((events) => events.some((e) => e.event === 'status'));
    } finally {
      sse.close();
    }
    // A public client refreshes with its client_id alone.
    const refreshed = await postForm(w.hub.url, '/v1/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token as string, client_id: app.client_id });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    // A public client cannot pretend to have a secret.
    const pretend = await postForm(w.hub.url, '/v1/oauth/token', { grant_type: 'refresh_token', refresh_token: refreshed.body.refresh_token as string }, { client_id: app.client_id, client_secret: 'made-up' });
    assert.deepEqual([pretend.status, pretend.body.error], [401, 'invalid_client']);
    // The refresh token it just replaced, used again (a stolen copy, say), ends the authorization.
    const reuse = await postForm(w.hub.url, '/v1/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token as string, client_id: app.client_id });
    assert.deepEqual([reuse.status, reuse.body.error], [400, 'invalid_grant']);
    assert.equal((await fetch(`${w.hub.url}/v1/events`, { headers: { authorization: `Bearer ${refreshed.body.access_token as string}` } })).status, 401);
  });

  it('sends a user who denies back to the service with access_denied, and grants nothing', async () => {
    const page = await browser.get(`${tp.url}/connect`);
    const done = await browser.submit(formOf(page), { decision: 'deny' });
    assert.equal(done.status, 200);
    assert.deepEqual(JSON.parse(done.body), { connected: false, error: 'access_denied' });
    const grants = (await (await fetch(`${w.hub.url}/v1/oauth/grants`, { headers: w.auth })).json()) as { grants: Array<{ client_id: string }> };
    assert.ok(!grants.grants.some((g) => g.client_id === client.client_id));
  });

  it('keeps first-party tokens at full access and refuses OAuth tokens where no scope applies: MQTT, topics, grants, logout', async () => {
    await connect();
    const oauthToken = tp.tokens().access_token;
    const bearer = { authorization: `Bearer ${oauthToken}` };
    assert.equal((await fetch(`${w.api}/device`, { headers: w.auth })).status, 200);

    const topic = await fetch(`${w.hub.url}/v1/topics/devices/${w.deviceId}/cmd`, { method: 'POST', headers: bearer, body: 'x' });
    assert.equal(topic.status, 403);
    assert.equal(((await topic.json()) as { error: { code: string } }).error.code, 'CR_ERR_INSUFFICIENT_SCOPE');
    assert.equal(topic.headers.get('www-authenticate'), 'Bearer error="insufficient_scope"');
    assert.equal((await fetch(`${w.hub.url}/v1/topics/devices/${w.deviceId}/cmd`, { method: 'POST', headers: w.auth, body: 'x' })).status, 200);
    assert.equal((await fetch(`${w.hub.url}/v1/oauth/grants`, { headers: bearer })).status, 403);
    assert.equal((await fetch(`${w.hub.url}/v1/oauth/grants/${client.client_id}`, { method: 'DELETE', headers: bearer })).status, 403);
    assert.equal((await fetch(`${w.hub.url}/v1/auth/logout`, { method: 'POST', headers: bearer })).status, 403);
    assert.equal((await tp.callHub('/v1/devices')).status, 200);

    const port = String(w.hub.mqttPort);
    const refused = await runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-u', w.email, '-P', oauthToken, '-t', `devices/${w.deviceId}/x`, '-m', 'y']);
    assert.equal(refused.code, 4, refused.stderr); // CONNACK 4: bad user name or password
    const firstParty = await login(w.hub.url, w.email, w.password);
    const accepted = await runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-u', w.email, '-P', firstParty, '-t', `devices/${w.deviceId}/x`, '-m', 'y']);
    assert.equal(accepted.code, 0, accepted.stderr);
  });

  it("stops a removed client's tokens within a second of an admin removing it with the CLI", async () => {
    assert.equal((await tp.callHub(`/v1/devices/${w.deviceId}/api/device`)).status, 200);
    const out = await cli(['oauth-clients', 'remove', client.client_id, '--data', w.data.path]);
    assert.match(out, /removed/);
    const removedAt = Date.now();
    // The hub is another process: it learns of the removal from the revocation log (read every second).
    let status = 200;
    while (status === 200 && Date.now() - removedAt < 5000) {
      status = (await tp.callHub(`/v1/devices/${w.deviceId}/api/device`)).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 50));
    }
    const tookMs = Date.now() - removedAt;
    assert.equal(status, 401);
    assert.ok(tookMs < 2500, `took ${tookMs} ms`);
    assert.equal((await tp.refresh()).status, 401);
    const list = JSON.parse(await cli(['oauth-clients', 'list', '--data', w.data.path, '--json'])) as Array<{ client_id: string }>;
    assert.ok(!list.some((c) => c.client_id === client.client_id));
    const page = await browser.get(`${tp.url}/connect`);
    assert.equal(page.status, 400);
    assert.match(page.body, /CR_ERR_OAUTH_UNKNOWN_CLIENT/);
  });
});
