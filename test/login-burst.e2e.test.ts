/**
 * Issue 12, section 1: a burst of concurrent wrong passwords must not outrun the failed-login limits
 * (checked before, and counted after, an awaited scrypt hash), nor hold other users' logins behind
 * its hashes. A real hub process with its default limits (10 per account, 50 per address), real
 * sockets from distinct loopback addresses (Linux routes all of 127/8 to lo).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { addUser, startHub, tempDir, type HubProc } from './support/procs.js';

interface Answer {
  status: number;
  retryAfter: string | undefined;
  code: string | undefined;
}

/** POST /v1/auth on a connection of its own from `localAddress`. */
function login(url: string, localAddress: string, email: string, password: string): Promise<Answer> {
  const body = JSON.stringify({ email, password });
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/auth`, { method: 'POST', agent: false, localAddress, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        let code: string | undefined;
        try {
          code = (JSON.parse(Buffer.concat(parts).toString('utf8')) as { error?: { code?: string } }).error?.code;
        } catch {
          code = undefined;
        }
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], code });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** What a burst got: the count of each status, and whether every 429 said when to come back. */
function tally(answers: Answer[]) {
  const count = (s: number) => answers.filter((a) => a.status === s).length;
  const limited = answers.filter((a) => a.status === 429);
  return {
    401: count(401),
    429: count(429),
    other: answers.filter((a) => a.status !== 401 && a.status !== 429).map((a) => a.status),
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
