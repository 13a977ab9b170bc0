import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addDevice, addUser, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';
import { startWorld, type World } from './support/world.js';

async function getStatus(url: string, headers: Record<string, string>): Promise<number> {
  const r = await fetch(url, { headers });
  await r.arrayBuffer();
  return r.status;
}

/** Retries until the relay answers 200 (the agent reconnects with backoff). */
async function until200(url: string, headers: Record<string, string>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < end) {
    last = await getStatus(url, headers).catch(() => 0);
    if (last === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`relay not answering 200 within ${timeoutMs} ms (last status ${last})`);
}

describe('tunnel lifecycle: take-over, hub restart, graceful shutdown', () => {
  let w: World;
  before(async () => {
    w = await startWorld();
  });
  after(async () => {
    await w?.stop();
  });

  it('lets a second connection for the same device take over atomically: the device never goes offline', async () => {
    const events = await fetch(`${w.hub.url}/v1/devices/${w.deviceId}/events`, { headers: w.auth });
    const reader = events.body!.getReader();
    const second = await startAgent({ hub: `tcp://127.0.0.1:${w.hub.tunnelPort}`, deviceId: w.deviceId, secret: w.secret, api: w.device.url });
    try {
      await w.agent.waitForLog('another connection with this device id took over; is a second agent running with these credentials?');
      assert.equal(await getStatus(`${w.api}/device`, w.auth), 200);
      const list = (await (await fetch(`${w.hub.url}/v1/devices`, { headers: w.auth })).json()) as { devices: Array<{ online: boolean }> };
      assert.equal(list.devices[0]!.online, true);
    } finally {
      await second.stop();
    }
    // The first agent comes back once the second is gone; only now may the device have gone offline and up again.
    await until200(`${w.api}/device`, w.auth);
    let text = '';
    const t = setTimeout(() => void reader.cancel(), 1500);
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) break;
      text += Buffer.from(value!).toString();
    }
    clearTimeout(t);
    const statuses = [...text.matchAll(/event: status\n(?:id: \d+\n)?data: (.*)\n/g)].map((m) => JSON.parse(m[1]!) as { online: boolean; snapshot?: boolean });
    assert.equal(statuses[0]!.snapshot, true);
    // Between the snapshot and the second agent stopping there is no offline event: take-over is seamless.
    const firstOffline = statuses.findIndex((s) => !s.online);
    assert.ok(firstOffline === -1 || firstOffline > 0);
  });

  it('keeps the agent running across a hub restart; it reconnects and the relay works again', async () => {
    const ports = { http: w.hub.httpPort, tunnel: w.hub.tunnelPort };
    await w.hub.stop();
    await w.agent.waitForLog('disconnected', () => true, 10_000);
    w.hub = await startHub(w.data.path, [], ports);
    const before = w.agent.logs('connected').length;
    await w.agent.waitFor(() => w.agent.logs('connected').length > before, 15_000, 'reconnection');
    await until200(`${w.api}/device`, w.auth);
    assert.equal(w.agent.child.exitCode, null, 'the agent never exited');
  });

  it('drains on SIGTERM: a request in flight completes, then the hub exits', async () => {
    const slow = fetch(`${w.api}/slow?ms=800`, { headers: w.auth });
    await new Promise((r) => setTimeout(r, 150));
    const code = w.hub.stop('SIGTERM');
    const r = await slow;
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { slept: true });
    assert.equal(await code, 0);
    assert.ok(w.hub.logs('hub stopped').length === 1);
    // Restart for the remaining tests and the suite's teardown.
    w.hub = await startHub(w.data.path, [], { http: w.hub.httpPort, tunnel: w.hub.tunnelPort });
    await until200(`${w.api}/device`, w.auth, 15_000);
  });
});

describe('tunnel transports: WebSocket and TLS', () => {
  let data: ReturnType<typeof tempDir>;
  let hub: HubProc;
  let device: Proc & { url: string };
  const procs: Proc[] = [];
  let cert: string;
  let token: string;
  const email = 'tls@example.com';
  before(async () => {
    data = tempDir();
    cert = join(data.path, 'cert.pem');
    const key = join(data.path, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    await addUser(data.path, email, 'tls test password');
    hub = await startHub(data.path, ['--tunnel-tls', '--tls-cert', cert, '--tls-key', key]);
    device = await startDevice(email);
    token = await login(hub.url, email, 'tls test password');
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await device?.stop();
    await hub?.stop();
    data?.remove();
  });

  it('relays through an agent connected over WebSocket at /v1/agent', async () => {
    const d = await addDevice(data.path, 'ws device', email);
    procs.push(await startAgent({ hub: `ws://127.0.0.1:${hub.httpPort}`, deviceId: d.id, secret: d.secret, api: device.url }));
    assert.equal(await getStatus(`${hub.url}/v1/devices/${d.id}/api/device`, { authorization: `Bearer ${token}` }), 200);
    const m = await (await fetch(`${hub.url}/metrics`)).text();
    assert.match(m, /cloudrest_tunnel_connections\{transport="ws"\} 1/);
  });

  it('relays through an agent connected over TLS that verifies the hub with a custom CA', async () => {
    const d = await addDevice(data.path, 'tls device', email);
    procs.push(await startAgent({ hub: `tls://127.0.0.1:${hub.tunnelPort}`, deviceId: d.id, secret: d.secret, api: device.url, extra: ['--tls-ca', cert] }));
    assert.equal(await getStatus(`${hub.url}/v1/devices/${d.id}/api/device`, { authorization: `Bearer ${token}` }), 200);
  });

  it('refuses to connect to a TLS hub whose certificate it cannot verify, and keeps retrying', async () => {
    const d = await addDevice(data.path, 'untrusting device', email);
    const a = await startAgent({ hub: `tls://127.0.0.1:${hub.tunnelPort}`, deviceId: d.id, secret: d.secret, api: device.url, waitConnected: false });
    procs.push(a);
    await a.waitForLog('hub unreachable', (o) => /certificate/i.test(JSON.stringify(o)));
    await a.waitFor(() => a.logs('hub unreachable').length >= 2, 10_000, 'a retry');
    assert.equal(a.logs('connected').length, 0);
    assert.equal(a.child.exitCode, null);
  });
});
