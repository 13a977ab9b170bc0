/**
 * Two hub processes sharing one Redis (issue 13 §2): the device's tunnel is on hub A; hub B knows it is
 * online, gives its events the same ids, resumes a stream from an id seen on A, answers from the
 * response cache A filled and drops it on a write through A, and a logout on B ends a stream on A.
 * (Both use the same SQLite data folder as the durable store; routing a request from B to the device's
 * tunnel on A is the node links' part and not asserted here.)
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startHub, tempDir, type HubProc } from './support/procs.js';
import { testRedis, type TestRedis } from './support/services.js';
import { SseClient } from './support/sse-client.js';
import { startWorld, type World } from './support/world.js';

describe('two hubs on one Redis', () => {
  let redis: TestRedis;
  let w: World;
  let b: HubProc;
  let notifyPort: number;
  before(async () => {
    redis = await testRedis();
    const shared = ['--redis', redis.url, '--redis-key-prefix', redis.keyPrefix, '--cluster-secret', 'two-fronts-test-cluster-secret', '--internal-port', '0', '--no-mqtt'];
    const dir = tempDir('cloudrest-fronts-');
    w = await startWorld({ hubArgs: shared, agentArgs: ['--notify-port', '0', '--notify-socket', join(dir.path, 'n.sock')] });
    notifyPort = (await w.agent.waitForLog('notify listening', (o) => typeof o.port === 'number')).port as number;
    b = await startHub(w.data.path, [...shared, '--no-admin-socket']);
  });
  after(async () => {
    await b?.stop();
    await w?.stop();
    await redis?.drop();
  });

  const notify = async (body: string) => {
    const r = await fetch(`http://127.0.0.1:${notifyPort}/notify`, { method: 'POST', body });
    assert.equal(r.status, 202);
    await r.arrayBuffer();
  };
  const events = (hub: string, headers: Record<string, string> = {}) => SseClient.open(`${hub}/v1/devices/${w.deviceId}/events`, { ...w.auth, ...headers });
  const messages = (c: SseClient) => c.of('notification').map((e) => [e.id, (JSON.parse(e.data) as { message: string }).message]);

  it('tells a client of either hub that the device is online', async () => {
    const get = async (hub: string) => ((await (await fetch(`${hub}/v1/devices/${w.deviceId}`, { headers: w.auth })).json()) as { online: boolean }).online;
    assert.equal(await get(w.hub.url), true);
    assert.equal(await get(b.url), true);
  });

  it('gives an event the same id on both hubs, and resumes on B from an id seen on A', async () => {
    const onA = await events(w.hub.url);
    const onB = await events(b.url);
    await onA.until((ev) => ev.some((e) => e.event === 'status'));
    await onB.until((ev) => ev.some((e) => e.event === 'status'));
    await notify('seen on both');
    await onA.until(() => messages(onA).length >= 1);
    await onB.until(() => messages(onB).length >= 1);
    assert.deepEqual(messages(onB), messages(onA));
    const lastSeen = onA.of('notification').at(-1)!.id!;
    onA.close();
    onB.close();

    await notify('missed 1\nmissed 2');
    // The client got 'seen on both' from A, went away, and comes back through B.
    const resumed = await events(b.url, { 'last-event-id': lastSeen });
    await resumed.until(() => messages(resumed).length >= 2);
    assert.deepEqual(messages(resumed).map(([, m]) => m), ['missed 1', 'missed 2']);
    assert.equal(resumed.of('gap').length, 0, 'nothing is missing');
    resumed.close();
  });

  it('answers on B from the response cache A filled, and a write through A drops it for B', async () => {
    const first = await fetch(`${w.api}/cached`, { headers: w.auth });
    assert.equal(first.headers.get('x-cache'), 'MISS');
    const body = await first.json();
    const fromB = await fetch(`${b.url}/v1/devices/${w.deviceId}/api/cached`, { headers: w.auth });
    assert.equal(fromB.headers.get('x-cache'), 'HIT');
    assert.deepEqual(await fromB.json(), body);
    await (await fetch(`${w.api}/cached`, { method: 'PUT', headers: w.auth, body: 'x' })).arrayBuffer();
    const afterWrite = await fetch(`${b.url}/v1/devices/${w.deviceId}/api/cached`, { headers: w.auth });
    await afterWrite.arrayBuffer();
    assert.notEqual(afterWrite.headers.get('x-cache'), 'HIT', 'B no longer has the old answer');
  });

  it('ends a stream on A when its token is logged out through B', async () => {
    const r = await fetch(`${w.hub.url}/v1/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: w.email, password: w.password }) });
    const { access_token: token } = (await r.json()) as { access_token: string };
    const onA = await events(w.hub.url, { authorization: `Bearer ${token}` });
    await onA.until((ev) => ev.some((e) => e.event === 'status'));
    const out = await fetch(`${b.url}/v1/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.ok(out.status === 204 || out.status === 200, `logout: ${out.status}`);
    // The stream ends (until() reports it), rather than waiting out its timeout.
    await assert.rejects(onA.until(() => false, 10_000), /stream ended/);
  });
});
