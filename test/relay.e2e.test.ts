import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addDevice, addUser, curl, login } from './support/procs.js';
import { startWorld, type World } from './support/world.js';

describe('relay: a device REST API reached through the hub', () => {
  let w: World;
  before(async () => {
    w = await startWorld();
  });
  after(async () => {
    await w?.stop();
  });

  it('relays GET /device with the device info as the device returns it', async () => {
    const r = await fetch(`${w.api}/device`, { headers: w.auth });
    assert.equal(r.status, 200);
    const info = (await r.json()) as { name: string; email: string };
    assert.equal(info.name, 'Demo thermostat');
    assert.equal(info.email, w.email);
  });

  it('relays every method with query, headers and body, via curl', async () => {
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
      const body = method === 'GET' || method === 'OPTIONS' ? [] : ['--data-binary', `payload for ${method}`];
      const { stdout } = await curl(['-X', method, '-H', `Authorization: Bearer ${w.token}`, '-H', 'X-Custom: yes', '-H', 'content-type: text/plain', ...body, `${w.api}/echo?a=1&b=two`]);
      const echo = JSON.parse(stdout) as { method: string; url: string; headers: Record<string, string>; size: number };
      assert.equal(echo.method, method);
      assert.equal(echo.url, '/echo?a=1&b=two');
      assert.equal(echo.headers['x-custom'], 'yes');
      assert.equal(echo.size, body.length ? Buffer.byteLength(`payload for ${method}`) : 0);
    }
  });

  it('answers HEAD with the headers and no body', async () => {
    const { stdout } = await curl(['-I', '-H', `Authorization: Bearer ${w.token}`, `${w.api}/json1k`]);
    assert.match(stdout, /^HTTP\/1\.1 200/);
    assert.match(stdout, /content-length: 1000/i);
  });

  it('never forwards the hub access token, strips hop-by-hop headers and adds X-Forwarded-*', async () => {
    // curl, because fetch will not send a Connection header.
    const { stdout } = await curl(['-i', '-H', `Authorization: Bearer ${w.token}`, '-H', 'X-Remove-Me: 1', '-H', 'Connection: x-remove-me', '-H', 'X-Forwarded-For: 10.9.9.9', `${w.api}/echo`]);
    const [head, body] = stdout.split('\r\n\r\n') as [string, string];
    const { headers } = JSON.parse(body) as { headers: Record<string, string> };
    assert.equal(headers.authorization, undefined);
    assert.equal(headers['x-remove-me'], undefined);
    assert.equal(headers['x-forwarded-for'], '10.9.9.9, 127.0.0.1');
    assert.equal(headers['x-forwarded-proto'], 'http');
    assert.equal(headers['x-forwarded-host'], `127.0.0.1:${w.hub.httpPort}`);
    assert.equal(headers['x-forwarded-prefix'], `/v1/devices/${w.deviceId}/api`);
    assert.match(head, /x-device-echo: 1/i);
  });

  it('handles Expect: 100-continue at the hub and does not pass it on to the device', async () => {
    const { stdout } = await curl(['-H', `Authorization: Bearer ${w.token}`, '-H', 'Expect: 100-continue', '--data-binary', 'x'.repeat(5000), `${w.api}/echo`]);
    const echo = JSON.parse(stdout) as { size: number; headers: Record<string, string> };
    assert.equal(echo.size, 5000);
    assert.equal(echo.headers.expect, undefined);
  });

  it('serves 1,000 concurrent requests on one device, each answered correctly', async () => {
    const results = await Promise.all(Array.from({ length: 1000 }, async (_, i) => {
      const r = await fetch(`${w.api}/echo?i=${i}`, { headers: w.auth });
      const body = (await r.json()) as { url: string };
      return r.status === 200 && body.url === `/echo?i=${i}`;
    }));
    assert.equal(results.filter(Boolean).length, 1000);
  });

  it('streams a device SSE response to the client event by event, not buffered', async () => {
    const started = Date.now();
    const r = await fetch(`${w.api}/sse?n=4&ms=300`, { headers: w.auth });
    assert.equal(r.headers.get('content-type'), 'text/event-stream');
    const reader = r.body!.getReader();
    const arrivals: number[] = [];
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      arrivals.push(Date.now() - started);
      text += Buffer.from(value).toString();
    }
    assert.equal((text.match(/^data: /gm) ?? []).length, 4);
    // The device sends an event every 300 ms: the first must arrive long before the last is sent.
    assert.ok(arrivals.length >= 2, `events arrived in ${arrivals.length} chunk(s)`);
    assert.ok(arrivals[0]! < arrivals[arrivals.length - 1]! - 500, `arrivals ${arrivals.join(',')}`);
  });

  it('caches a max-age GET (X-Cache HIT, device not asked again) until a PUT on the URI drops it', async () => {
    const get = () => fetch(`${w.api}/cached`, { headers: w.auth });
    const first = await get();
    const firstBody = (await first.json()) as { hits: number };
    assert.equal(first.headers.get('x-cache'), 'MISS');
    const second = await get();
    assert.equal(second.headers.get('x-cache'), 'HIT');
    assert.deepEqual(await second.json(), firstBody, 'the device was not asked again');
    const put = await fetch(`${w.api}/cached`, { method: 'PUT', headers: w.auth, body: 'x' });
    await put.arrayBuffer();
    const third = await get();
    assert.equal(third.headers.get('x-cache'), 'MISS');
    assert.equal(((await third.json()) as { hits: number }).hits, firstBody.hits + 2, 'the PUT and the GET reached the device');
  });

  it('answers a conditional request 304 from the cache when the ETag matches', async () => {
    const first = await fetch(`${w.api}/cached`, { headers: w.auth });
    await first.arrayBuffer();
    // curl: fetch turns a conditional request into `cache-control: no-cache`, which forces revalidation.
    const { stdout } = await curl(['-i', '-H', `Authorization: Bearer ${w.token}`, '-H', 'If-None-Match: "cached-v1"', `${w.api}/cached`]);
    assert.match(stdout, /^HTTP\/1\.1 304/);
    assert.match(stdout, /\r\nx-cache: HIT\r\n/i);
    assert.match(stdout, /\r\netag: "cached-v1"\r\n/i);
  });

  it('revalidates an ETag-only response with the device and serves the cached body on 304', async () => {
    const a = await fetch(`${w.api}/etag`, { headers: w.auth });
    const aBody = (await a.json()) as { version: number };
    const b = await fetch(`${w.api}/etag`, { headers: w.auth });
    assert.equal(b.status, 200);
    assert.equal(b.headers.get('x-cache'), 'HIT');
    assert.deepEqual(await b.json(), aBody);
  });

  it('lists the user\'s devices with online state, in both the v1 and the seed\'s shape', async () => {
    for (const path of ['/v1/devices', '/v1/devices/list']) {
      const r = await fetch(`${w.hub.url}${path}`, { headers: w.auth });
      const { devices } = (await r.json()) as { devices: Array<{ id: string; online: boolean }> };
      assert.deepEqual(devices.map((d) => [d.id, d.online]), [[w.deviceId, true]]);
    }
    const one = await fetch(`${w.hub.url}/v1/devices/${w.deviceId}`, { headers: w.auth });
    const d = (await one.json()) as { online: boolean; info: { manufacturer: string } };
    assert.equal(d.online, true);
    assert.equal(d.info.manufacturer, 'cloudrest');
  });

  it('logs in with the seed\'s /v1/auth shape and refuses a wrong password with a stable code', async () => {
    const ok = await fetch(`${w.hub.url}/v1/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: w.email, password: w.password, remember: true }) });
    const body = (await ok.json()) as { access_token: string; expires: string; devices: Array<{ id: string; name: string; online: boolean; lastSeen: string | null }> };
    assert.ok(body.access_token.length >= 32);
    assert.ok(Date.parse(body.expires) > Date.now() + 7 * 24 * 3600_000, 'remember gives a long-lived token');
    assert.deepEqual(body.devices, [{ id: w.deviceId, name: 'Test device', online: true, lastSeen: body.devices[0]!.lastSeen }]);
    const bad = await fetch(`${w.hub.url}/v1/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: w.email, password: 'nope' }) });
    assert.equal(bad.status, 401);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'CR_ERR_INVALID_CREDENTIALS');
    const malformed = await fetch(`${w.hub.url}/v1/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":' });
    assert.equal(malformed.status, 400);
    assert.match(((await malformed.json()) as { error: { code: string } }).error.code, /^CR_ERR_(INVALID_JSON|BAD_REQUEST)$/);
  });

  it('refuses a missing or revoked token with 401 CR_ERR_UNAUTHORIZED', async () => {
    const none = await fetch(`${w.api}/device`);
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'CR_ERR_UNAUTHORIZED');
    const t = await login(w.hub.url, w.email, w.password);
    const out = await fetch(`${w.hub.url}/v1/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${t}` } });
    assert.equal(out.status, 204);
    const after = await fetch(`${w.api}/device`, { headers: { authorization: `Bearer ${t}` } });
    assert.equal(after.status, 401);
  });

  it('answers 404 for an unknown device and for another user\'s device, 503 for an offline one', async () => {
    const unknown = await fetch(`${w.hub.url}/v1/devices/d_nosuchdevice/api/device`, { headers: w.auth });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'CR_ERR_DEVICE_NOT_FOUND');

    await addUser(w.data.path, 'other@example.com', 'another password');
    const otherToken = await login(w.hub.url, 'other@example.com', 'another password');
    const foreign = await fetch(`${w.api}/device`, { headers: { authorization: `Bearer ${otherToken}` } });
    assert.equal(foreign.status, 404, 'a device that is not yours does not exist for you');
    await foreign.arrayBuffer();

    const offline = await addDevice(w.data.path, 'Never connected', w.email);
    const r = await fetch(`${w.hub.url}/v1/devices/${offline.id}/api/device`, { headers: w.auth });
    assert.equal(r.status, 503);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'CR_ERR_DEVICE_OFFLINE');
  });

  it('exposes health, readiness and Prometheus metrics with relayed request counts', async () => {
    assert.equal((await fetch(`${w.hub.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${w.hub.url}/readyz`)).status, 200);
    const m = await (await fetch(`${w.hub.url}/metrics`)).text();
    assert.match(m, /cloudrest_devices_online 1/);
    assert.match(m, /cloudrest_relay_requests_total\{status="200",cache="none"\} \d+/);
    assert.match(m, /cloudrest_relay_duration_seconds_bucket/);
    assert.match(m, /cloudrest_tunnel_connections\{transport="tcp"\} 1/);
  });
});
