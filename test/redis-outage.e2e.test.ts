/**
 * A hub on Redis (embedded SQLite store) whose Redis goes away and comes back (issue 13 §2): while it
 * is away /readyz says so and what needs it answers 503 CR_ERR_BACKEND_UNAVAILABLE at once; once it is
 * back the same process recovers by itself, and the device it held, never disconnected, is online again.
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { privateRedis } from './support/services.js';
import { startWorld } from './support/world.js';

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const got = await check();
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Readiness {
  status: number;
  body: { status: string; backends?: Record<string, { ok: boolean; error?: string }> };
}

it('a hub whose Redis stops answers 503 with a reason and recovers by itself when Redis is back', async () => {
  const redis = await privateRedis();
  const w = await startWorld({ hubArgs: ['--redis', redis.url, '--cluster-secret', 'outage-test-cluster-secret', '--node-ttl-ms', '1500', '--internal-port', '0'] });
  after(async () => {
    await w.stop();
    await redis.stop();
  });
  const readyz = async (): Promise<Readiness> => {
    const r = await fetch(`${w.hub.url}/readyz`);
    return { status: r.status, body: (await r.json()) as Readiness['body'] };
  };
  const login = () => fetch(`${w.hub.url}/v1/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: w.email, password: w.password }) });
  const online = async () => ((await (await fetch(`${w.hub.url}/v1/devices/${w.deviceId}`, { headers: w.auth })).json()) as { online?: boolean }).online;

  assert.deepEqual(await readyz(), { status: 200, body: { status: 'ready', backends: { store: { ok: true }, redis: { ok: true } } } });
  assert.equal((await fetch(`${w.api}/device`, { headers: w.auth })).status, 200, 'relayed through the hub on Redis');
  assert.equal(await online(), true);

  await redis.stop();
  const down = await until('/readyz to report Redis down', async () => {
    const r = await readyz();
    return r.status === 503 ? r : undefined;
  });
  assert.equal(down.body.status, 'not ready');
  assert.equal(down.body.backends?.store?.ok, true);
  assert.equal(down.body.backends?.redis?.ok, false);
  assert.ok((down.body.backends?.redis?.error ?? '').length > 0, 'says why');
  const started = Date.now();
  const refused = await login();
  assert.equal(refused.status, 503);
  assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'CR_ERR_BACKEND_UNAVAILABLE');
  assert.ok(Date.now() - started < 5000, 'answered at once, not after a hang');

  await redis.restart(); // empty: nothing was kept
  await until('/readyz to be ready again', async () => ((await readyz()).status === 200 ? true : undefined));
  await until('login to work again', async () => ((await login()).status === 200 ? true : undefined));
  // Written back by the hub within a heartbeat, with no reconnect of the agent.
  await until('the device online again', async () => ((await online()) === true ? true : undefined));
  assert.equal((await fetch(`${w.api}/device`, { headers: w.auth })).status, 200);
  assert.equal(w.hub.logs('device connected').length, 1, 'the device was never disconnected');
  assert.equal(w.hub.child.exitCode, null, 'the same hub process throughout');
});
