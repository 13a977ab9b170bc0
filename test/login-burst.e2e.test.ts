/**
 * Issue 12, section 1: a burst of concurrent wrong passwords must not outrun the failed-login limits
 * (checked before, and counted after, an awaited scrypt hash), nor hold other users' logins behind
 * its hashes. A real hub process with its default limits (10 per account, 50 per address), real
 * sockets from distinct loopback addresses (Linux routes all of 127/8 to lo).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { formOf } from './support/curl-browser.js';
import { authorizeUrl, registerClient } from './support/oauth.js';
import { addDevice, addUser, login as signIn, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';

interface Answer {
  status: number;
  retryAfter: string | undefined;
  code: string | undefined;
  text: string;
}

/** A POST on a connection of its own from `localAddress` (127.0.0.x are all loopback on Linux). */
function post(url: string, localAddress: string, body: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent: false, localAddress, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let code: string | undefined;
        try {
          code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
        } catch {
          code = undefined;
        }
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], code, text });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const JSON_TYPE = { 'content-type': 'application/json' };

/** POST /v1/auth from `localAddress`. */
function login(url: string, localAddress: string, email: string, password: string): Promise<Answer> {
  return post(`${url}/v1/auth`, localAddress, JSON.stringify({ email, password }), JSON_TYPE);
}

/** What a burst got: the count of refusals (`refusal`: the status of a wrong secret) and of 429s, and whether every 429 said when to come back. */
function tally(answers: Answer[], refusal = 401) {
  const count = (s: number) => answers.filter((a) => a.status === s).length;
  const limited = answers.filter((a) => a.status === 429);
  return {
    401: count(refusal),
    429: count(429),
    other: answers.filter((a) => a.status !== refusal && a.status !== 429).map((a) => a.status),
    every429HasRetryAfter: limited.every((a) => a.retryAfter !== undefined && Number(a.retryAfter) >= 1),
    codes429: [...new Set(limited.map((a) => a.code))].sort(),
  };
}

/** Starts `n` logins at once, and `other` (a correct login from elsewhere) while they are under way; times `other`. */
async function burstWith(n: number, one: (i: number) => Promise<Answer>, other: () => Promise<Answer>) {
  const burst = Array.from({ length: n }, (_, i) => one(i));
  await new Promise((r) => setTimeout(r, 20));
  const t0 = performance.now();
  const mine = await other();
  const otherMs = Math.round(performance.now() - t0);
  return { answers: await Promise.all(burst), mine, otherMs };
}

const BURST = 500;

describe('login bursts: the failed-password limits hold under concurrency', () => {
  let data: { path: string; remove(): void };
  let hub: HubProc;
  before(async () => {
    data = tempDir();
    await addUser(data.path, 'ada@example.com', 'ada right password');
    await addUser(data.path, 'bob@example.com', 'bob right password');
    hub = await startHub(data.path);
  });
  after(async () => {
    await hub?.stop();
    data?.remove();
  });

  it(`${BURST} concurrent wrong passwords for one account from one address: at most 10 are checked (401), the rest get 429 with Retry-After, and another user signs in meanwhile`, async (t) => {
    const r = await burstWith(BURST, (i) => login(hub.url, '127.0.0.1', 'ada@example.com', `guess ${i}`), () => login(hub.url, '127.0.0.2', 'bob@example.com', 'bob right password'));
    const s = tally(r.answers);
    t.diagnostic(`one account: ${s[401]} × 401, ${s[429]} × 429 ${JSON.stringify(s.codes429)}; bob's login took ${r.otherMs} ms (${r.mine.status})`);
    assert.ok(s[401] <= 10, `${s[401]} wrong passwords were checked, the limit is 10`);
    assert.equal(s[401] + s[429], BURST, `other answers: ${JSON.stringify(s.other)}`);
    assert.ok(s.every429HasRetryAfter, 'every 429 has Retry-After');
    assert.equal(r.mine.status, 200, 'the other user signs in during the burst');
    const after = await login(hub.url, '127.0.0.1', 'ada@example.com', 'ada right password');
    assert.equal(after.status, 429, 'the account stays limited, even to its right password');
    assert.equal(after.code, 'CR_ERR_RATE_LIMITED');
  });

  it(`${BURST} concurrent wrong passwords over many accounts from one address: at most 50 are checked (401), the rest get 429 with Retry-After`, async (t) => {
    const r = await burstWith(BURST, (i) => login(hub.url, '127.0.0.3', `nobody${i % 250}@example.com`, `guess ${i}`), () => login(hub.url, '127.0.0.4', 'bob@example.com', 'bob right password'));
    const s = tally(r.answers);
    t.diagnostic(`one address: ${s[401]} × 401, ${s[429]} × 429 ${JSON.stringify(s.codes429)}; bob's login took ${r.otherMs} ms (${r.mine.status})`);
    assert.ok(s[401] <= 50, `${s[401]} wrong passwords were checked, the limit is 50 per address`);
    assert.equal(s[401] + s[429], BURST, `other answers: ${JSON.stringify(s.other)}`);
    assert.ok(s.every429HasRetryAfter, 'every 429 has Retry-After');
    assert.equal(r.mine.status, 200, 'the other user signs in during the burst');
    // Checks refused as busy (CR_ERR_BUSY) were not checked, so they do not count: guessing on, one
    // at a time, the address reaches its 50 and no more.
    let checked = s[401];
    for (let i = 0; i < 60; i++) {
      const a = await login(hub.url, '127.0.0.3', `late${i}@example.com`, 'guess');
      if (a.status !== 401) break;
      checked++;
    }
    assert.ok(checked <= 50, `${checked} wrong passwords were checked from one address, the limit is 50`);
    const blocked = await login(hub.url, '127.0.0.3', 'bob@example.com', 'bob right password');
    assert.equal(blocked.status, 429, 'the address stays limited for every account');
  });
});

/** `n` copies of `one` at once. */
const burst = (n: number, one: (i: number) => Promise<Answer>) => Promise.all(Array.from({ length: n }, (_, i) => one(i)));

describe('bursts on every other password check: password change, OAuth consent, device authentication', () => {
  const N = 200;
  const DEVICE_PASSWORD = 'kept only on the device';
  let data: { path: string; remove(): void };
  let hub: HubProc;
  let device: Proc;
  let agent: Proc;
  let deviceId: string;
  let clientId: string;
  before(async () => {
    data = tempDir();
    await addUser(data.path, 'carol@example.com', 'carol right password');
    await addUser(data.path, 'dave@example.com', 'dave right password');
    await addUser(data.path, 'erin@example.com', 'erin right password');
    const d = await addDevice(data.path, 'Locked thermostat', 'erin@example.com');
    deviceId = d.id;
    clientId = (await registerClient(data.path, 'Burst service', ['https://svc.example/cb'], true)).client_id;
    hub = await startHub(data.path);
    device = await startDevice('erin@example.com', { password: DEVICE_PASSWORD });
    agent = await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: d.id, secret: d.secret, api: (device as Proc & { url: string }).url });
  });
  after(async () => {
    await Promise.all([agent?.stop(), device?.stop()]);
    await hub?.stop();
    data?.remove();
  });

  it(`${N} concurrent password changes with a wrong current password: at most 10 are checked, the rest get 429`, async (t) => {
    const token = await signIn(hub.url, 'carol@example.com', 'carol right password');
    const headers = { ...JSON_TYPE, authorization: `Bearer ${token}` };
    const change = (current: string) => post(`${hub.url}/v1/auth/password`, '127.0.0.5', JSON.stringify({ current, new: 'a brand new password' }), headers);
    const s = tally(await burst(N, (i) => change(`guess ${i}`)));
    t.diagnostic(`password change: ${s[401]} × 401, ${s[429]} × 429 ${JSON.stringify(s.codes429)}`);
    assert.ok(s[401] <= 10, `${s[401]} wrong current passwords were checked, the limit is 10`);
    assert.equal(s[401] + s[429], N, `other answers: ${JSON.stringify(s.other)}`);
    assert.ok(s.every429HasRetryAfter);
    assert.equal((await change('carol right password')).status, 429, 'the account stays limited');
  });

  it(`${N} concurrent consent forms with a wrong password: at most 10 are checked, the rest get the page again with 429 and Retry-After`, async (t) => {
    const page = await fetch(authorizeUrl(hub.url, { response_type: 'code', client_id: clientId, redirect_uri: 'https://svc.example/cb', scope: 'devices:read', state: 's' }));
    assert.equal(page.status, 200);
    const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0]!;
    const form = formOf({ status: 200, url: page.url, headers: {}, body: await page.text() });
    const submit = (password: string) =>
      post(form.action, '127.0.0.6', new URLSearchParams({ ...form.fields, email: 'dave@example.com', password, decision: 'allow' }).toString(), { 'content-type': 'application/x-www-form-urlencoded', cookie });
    const answers = await burst(N, (i) => submit(`guess ${i}`));
    const s = tally(answers);
    t.diagnostic(`OAuth consent: ${s[401]} × 401, ${s[429]} × 429`);
    assert.ok(s[401] <= 10, `${s[401]} wrong passwords were checked, the limit is 10`);
    assert.equal(s[401] + s[429], N, `other answers: ${JSON.stringify(s.other)}`);
    assert.ok(s.every429HasRetryAfter);
    assert.ok(answers.filter((a) => a.status === 429).every((a) => /Too many failed attempts/.test(a.text)), 'the page says why');
    assert.equal((await submit('dave right password')).status, 429, 'the account stays limited');
  });

  it(`${N} concurrent device authentications with a wrong password: at most 10 reach the device, the rest get 429`, async (t) => {
    const token = await signIn(hub.url, 'erin@example.com', 'erin right password');
    const headers = { ...JSON_TYPE, authorization: `Bearer ${token}` };
    const auth = (password: string) => post(`${hub.url}/v1/devices/${deviceId}/auth`, '127.0.0.7', JSON.stringify({ password }), headers);
    const s = tally(await burst(N, (i) => auth(`guess ${i}`)), 403);
    t.diagnostic(`device auth: ${s[401]} × 403, ${s[429]} × 429 ${JSON.stringify(s.codes429)}`);
    assert.ok(s[401] <= 10, `${s[401]} wrong passwords reached the device, the limit is 10`);
    assert.equal(s[401] + s[429], N, `other answers: ${JSON.stringify(s.other)}`);
    assert.ok(s.every429HasRetryAfter);
    assert.equal((await auth(DEVICE_PASSWORD)).status, 429, 'the device stays limited');
  });
});

describe('password hashes are bounded hub-wide', () => {
  let data: { path: string; remove(): void };
  let hub: HubProc;
  let device: Proc;
  let agent: Proc;
  let deviceId: string;
  before(async () => {
    data = tempDir();
    await addUser(data.path, 'ada@example.com', 'ada right password');
    const d = await addDevice(data.path, 'New thermostat');
    deviceId = d.id;
    hub = await startHub(data.path, ['--max-concurrent-password-hashes', '1', '--max-queued-password-hashes', '0']);
    // A device naming an email nobody has: the hub writes a confirmation link (logged, no mail server).
    device = await startDevice('newbie@example.com');
    agent = await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: d.id, secret: d.secret, api: (device as Proc & { url: string }).url });
  });
  after(async () => {
    await Promise.all([agent?.stop(), device?.stop()]);
    await hub?.stop();
    data?.remove();
  });

  it('logins from many addresses at once beyond the hash slots get 429 CR_ERR_BUSY with Retry-After, and are not counted as failures', async (t) => {
    const answers = await burst(40, (i) => login(hub.url, `127.0.1.${i + 1}`, 'ada@example.com', `guess ${i}`));
    const busy = answers.filter((a) => a.status === 429);
    const checked = answers.filter((a) => a.status === 401).length;
    t.diagnostic(`one slot, no queue: ${checked} × 401, ${busy.length} × 429 ${JSON.stringify([...new Set(busy.map((a) => a.code))])}`);
    assert.ok(checked >= 1 && checked <= 10, `${checked} checked`);
    assert.ok(busy.length >= 1, 'some found no slot');
    assert.equal(checked + busy.length, 40, `other answers: ${JSON.stringify(answers.filter((a) => a.status !== 401 && a.status !== 429).map((a) => a.status))}`);
    assert.ok(busy.every((a) => a.code === 'CR_ERR_BUSY' && Number(a.retryAfter) >= 1), 'each says CR_ERR_BUSY and when to come back');
    if (checked < 10) assert.equal((await login(hub.url, '127.0.2.1', 'ada@example.com', 'ada right password')).status, 200, 'busy refusals did not lock the account');
  });

  it('concurrent confirmations of one link beyond the hash slots get 429 CR_ERR_BUSY with Retry-After; one creates the account', async (t) => {
    const logged = await hub.waitForLog('confirmation mail queued', (l) => l.deviceId === deviceId);
    const id = new URL(logged.link as string).searchParams.get('confirmationId')!;
    const body = JSON.stringify({ confirmationId: id, password: 'newbie chosen password' });
    const answers = await burst(20, (i) => post(`${hub.url}/v1/confirmation`, `127.0.3.${i + 1}`, body, JSON_TYPE));
    const by = (s: number) => answers.filter((a) => a.status === s);
    t.diagnostic(`confirmations: ${by(201).length} × 201, ${by(410).length} × 410, ${by(429).length} × 429`);
    assert.equal(by(201).length, 1, 'one confirms');
    assert.ok(by(429).length >= 1, 'some found no slot');
    assert.equal(by(201).length + by(410).length + by(429).length, 20, `other answers: ${JSON.stringify(answers.map((a) => a.status))}`);
    assert.ok(by(429).every((a) => a.code === 'CR_ERR_BUSY' && Number(a.retryAfter) >= 1));
    assert.equal((await login(hub.url, '127.0.3.100', 'newbie@example.com', 'newbie chosen password')).status, 200);
  });
});
