import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { outboxFiles } from './support/mail.js';
import { addUser, curl, login, startHub, tempDir, type HubProc } from './support/procs.js';
import { startWorld, type World } from './support/world.js';

const json = { 'content-type': 'application/json' };
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

async function errorCode(r: Response): Promise<string> {
  return ((await r.json()) as { error: { code: string } }).error.code;
}

interface Listed {
  id: string;
  created: string;
  expires: string;
  lastUsed: string | null;
  current: boolean;
}

async function tokens(url: string, token: string): Promise<Listed[]> {
  const r = await fetch(`${url}/v1/auth/tokens`, { headers: bearer(token) });
  assert.equal(r.status, 200);
  return ((await r.json()) as { tokens: Listed[] }).tokens;
}

describe('accounts: tokens and passwords', () => {
  let w: World;
  before(async () => {
    w = await startWorld();
  });
  after(async () => {
    await w?.stop();
  });

  it('sends no confirmation mail for a user added with cloudrest users add: that email is confirmed', async () => {
    await w.hub.waitForLog('device connected');
    const r = await fetch(`${w.api}/device`, { headers: w.auth });
    assert.equal(r.status, 200);
    assert.equal(w.hub.logs('confirmation mail queued').length, 0);
    assert.deepEqual(outboxFiles(join(w.data.path, 'outbox')), []);
  });

  it('lists the caller\'s live tokens by id, never the tokens, marking the current one', async () => {
    const second = await login(w.hub.url, w.email, w.password, true);
    const list = await tokens(w.hub.url, w.token);
    assert.ok(list.length >= 2);
    assert.equal(list.filter((t) => t.current).length, 1);
    const body = JSON.stringify(list);
    assert.ok(!body.includes(w.token) && !body.includes(second), 'no token appears in the listing');
    for (const t of list) {
      assert.match(t.id, /^[0-9a-f]{16}$/);
      assert.ok(Date.parse(t.expires) > Date.parse(t.created));
    }
    const current = list.find((t) => t.current)!;
    assert.ok(current.lastUsed !== null && Date.parse(current.lastUsed) <= Date.now(), 'the current token has been used');
    const fromSecond = await tokens(w.hub.url, second);
    assert.notEqual(fromSecond.find((t) => t.current)!.id, current.id);
  });

  it('revokes one token by id: it stops working at once, even for the relay', async () => {
    const victim = await login(w.hub.url, w.email, w.password);
    assert.equal((await fetch(`${w.api}/temperature`, { headers: bearer(victim) })).status, 200); // now cached
    const id = (await tokens(w.hub.url, victim)).find((t) => t.current)!.id;
    const del = await fetch(`${w.hub.url}/v1/auth/tokens/${id}`, { method: 'DELETE', headers: w.auth });
    assert.equal(del.status, 204);
    const relayed = await fetch(`${w.api}/temperature`, { headers: bearer(victim) });
    assert.equal(relayed.status, 401);
    assert.equal(await errorCode(relayed), 'CR_ERR_UNAUTHORIZED');
    const again = await fetch(`${w.hub.url}/v1/auth/tokens/${id}`, { method: 'DELETE', headers: w.auth });
    assert.equal(again.status, 404);
    const junk = await fetch(`${w.hub.url}/v1/auth/tokens/not-an-id`, { method: 'DELETE', headers: w.auth });
    assert.equal(junk.status, 404);
    assert.equal((await tokens(w.hub.url, w.token)).some((t) => t.id === id), false);
  });

  it('does not let one user revoke another\'s token', async () => {
    await addUser(w.data.path, 'mallory@example.com', 'mallory password');
    const mallory = await login(w.hub.url, 'mallory@example.com', 'mallory password');
    const mine = (await tokens(w.hub.url, w.token)).find((t) => t.current)!.id;
    const r = await fetch(`${w.hub.url}/v1/auth/tokens/${mine}`, { method: 'DELETE', headers: bearer(mallory) });
    assert.equal(r.status, 404);
    assert.equal((await fetch(`${w.api}/temperature`, { headers: w.auth })).status, 200);
  });

  it('changes the password: the old one stops working and every other token is revoked', async () => {
    const user = 'changer@example.com';
    await addUser(w.data.path, user, 'the first password');
    const keep = await login(w.hub.url, user, 'the first password');
    const other = await login(w.hub.url, user, 'the first password');
    assert.equal((await fetch(`${w.hub.url}/v1/devices`, { headers: bearer(other) })).status, 200);

    const wrong = await fetch(`${w.hub.url}/v1/auth/password`, { method: 'POST', headers: { ...json, ...bearer(keep) }, body: JSON.stringify({ current: 'not it', new: 'the second password' }) });
    assert.equal(wrong.status, 401);
    assert.equal(await errorCode(wrong), 'CR_ERR_INVALID_CREDENTIALS');
    const weak = await fetch(`${w.hub.url}/v1/auth/password`, { method: 'POST', headers: { ...json, ...bearer(keep) }, body: JSON.stringify({ current: 'the first password', new: 'short' }) });
    assert.equal(weak.status, 400);
    assert.equal(await errorCode(weak), 'CR_ERR_VALIDATION');

    const ok = await fetch(`${w.hub.url}/v1/auth/password`, { method: 'POST', headers: { ...json, ...bearer(keep) }, body: JSON.stringify({ current: 'the first password', new: 'the second password' }) });
    assert.equal(ok.status, 204);
    assert.equal((await fetch(`${w.hub.url}/v1/devices`, { headers: bearer(other) })).status, 401, 'the other session is signed out');
    assert.equal((await fetch(`${w.hub.url}/v1/devices`, { headers: bearer(keep) })).status, 200, 'the one that changed it goes on');
    const old = await fetch(`${w.hub.url}/v1/auth`, { method: 'POST', headers: json, body: JSON.stringify({ email: user, password: 'the first password' }) });
    assert.equal(old.status, 401);
    await login(w.hub.url, user, 'the second password');
    assert.equal((await tokens(w.hub.url, keep)).length, 2, 'the kept token and the new login');
  });

  it('logs out: the token is revoked and gone from the list', async () => {
    const t = await login(w.hub.url, w.email, w.password);
    const id = (await tokens(w.hub.url, t)).find((x) => x.current)!.id;
    assert.equal((await fetch(`${w.hub.url}/v1/auth/logout`, { method: 'POST', headers: bearer(t) })).status, 204);
    assert.equal((await fetch(`${w.hub.url}/v1/auth/tokens`, { headers: bearer(t) })).status, 401);
    assert.equal((await tokens(w.hub.url, w.token)).some((x) => x.id === id), false);
  });
});

describe('accounts: failed password limits', () => {
  let data: { path: string; remove(): void };
  let hub: HubProc;
  before(async () => {
    data = tempDir();
    await addUser(data.path, 'ada@example.com', 'the right password');
    await addUser(data.path, 'bob@example.com', 'bob right password');
    hub = await startHub(data.path, ['--login-max-failures', '3', '--login-max-failures-per-address', '6', '--login-window-ms', '3000']);
  });
  after(async () => {
    await hub?.stop();
    data?.remove();
  });

  const attempt = (email: string, password: string) =>
    fetch(`${hub.url}/v1/auth`, { method: 'POST', headers: json, body: JSON.stringify({ email, password }) });

  it('answers 429 CR_ERR_RATE_LIMITED with Retry-After once an account has too many failures, even to the right password', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await attempt('ada@example.com', `guess ${i}`)).status, 401);
    const limited = await attempt('ada@example.com', 'the right password');
    assert.equal(limited.status, 429);
    const retryAfter = Number(limited.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 3, `Retry-After ${retryAfter}`);
    assert.equal(await errorCode(limited), 'CR_ERR_RATE_LIMITED');
    // curl, a client nobody here wrote, sees the same.
    const { stdout } = await curl(['-i', '-H', 'content-type: application/json', '--data', '{"email":"ada@example.com","password":"x"}', `${hub.url}/v1/auth`]);
    assert.match(stdout, /^HTTP\/1\.1 429/);
    assert.match(stdout, /\r\nretry-after: \d\r\n/i);
    assert.equal((await attempt('bob@example.com', 'bob right password')).status, 200, 'other accounts are not locked');

    await new Promise((r) => setTimeout(r, retryAfter * 1000 + 100));
    assert.equal((await attempt('ada@example.com', 'the right password')).status, 200, 'the window ended');
  });

  it('limits one client address across accounts, whether or not they exist', async () => {
    for (let i = 0; i < 6; i++) assert.equal((await attempt(`nobody${i}@example.com`, 'guess')).status, 401);
    const limited = await attempt('bob@example.com', 'bob right password');
    assert.equal(limited.status, 429);
    assert.equal(await errorCode(limited), 'CR_ERR_RATE_LIMITED');
  });
});
