import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IDisconnectPacket } from 'mqtt';
import { addDevice, addUser, curl, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';
import { cloudrest } from './support/factory.js';
import { MqttClients, runClient } from './support/mqtt-peers.js';

const LOG_EACH_REFUSAL = ['--log-refusals-interval-ms', '0'];

async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('revoking a device: cloudrest devices revoke against a running hub', () => {
  const email = 'owner@example.com';
  const password = 'correct horse battery';
  let data: ReturnType<typeof tempDir>;
  let hub: HubProc;
  let device: Proc & { url: string };
  let a: { id: string; secret: string };
  let b: { id: string; secret: string };
  let agentA: Proc;
  let agentB: Proc;
  let token: string;
  const clients = new MqttClients();
  const get = async (id: string) => {
    const { stdout } = await curl(['-H', `Authorization: Bearer ${token}`, '-w', '\n%{http_code}', `${hub.url}/v1/devices/${id}/api/temperature`]);
    const [body, status] = stdout.split('\n') as [string, string];
    return { status: Number(status), body };
  };

  before(async () => {
    data = tempDir();
    await addUser(data.path, email, password);
    a = await addDevice(data.path, 'Device A', email);
    b = await addDevice(data.path, 'Device B', email);
    // Every refused reconnect is logged (not one per address per interval): the tests count them.
    hub = await startHub(data.path, LOG_EACH_REFUSAL);
    device = await startDevice(email);
    agentA = await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: a.id, secret: a.secret, api: device.url });
    agentB = await startAgent({ hub: `ws://127.0.0.1:${hub.httpPort}`, deviceId: b.id, secret: b.secret, api: device.url });
    token = await login(hub.url, email, password);
  });
  after(async () => {
    await clients.closeAll();
    await Promise.all([agentA?.stop(), agentB?.stop(), device?.stop()]);
    await hub?.stop();
    data?.remove();
  });

  it("closes the device's live tunnel and MQTT connection at once, refuses its reconnects, and keeps serving other devices", async () => {
    assert.equal((await get(a.id)).status, 200);
    const mqttUrl = `mqtt://127.0.0.1:${hub.mqttPort!}`;
    const mqttA = await clients.connect(mqttUrl, { protocolVersion: 5, username: a.id, password: a.secret, clientId: 'device-a' });
    const kicked = new Promise<IDisconnectPacket>((r) => mqttA.once('disconnect', r));

    const started = Date.now();
    const r = await cloudrest(['devices', 'revoke', a.id, '--data', data.path]);
    const ended = Date.now();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`device ${a.id} revoked \\(.*\\); its tunnel on the running hub was closed; 1 MQTT connection closed`));
    // The hub closed the tunnel before it answered the command: at once, not at some later check.
    const closed = await hub.waitForLog('device tunnel closed by the hub', (l) => l.deviceId === a.id, 5000);
    assert.ok((closed.time as number) >= started && (closed.time as number) <= ended, `tunnel closed at ${closed.time as number}, command ran ${started}..${ended}`);
    const goaway = await agentA.waitForLog('hub says this device is revoked; retrying at the longest backoff', () => true, 10_000);
    assert.equal(goaway.code, 'REVOKED');
    assert.equal(goaway.reason, 'device revoked');
    assert.equal((await kicked).reasonCode, 0x98, 'MQTT 5 DISCONNECT: Administrative action');

    const offline = await get(a.id);
    assert.equal(offline.status, 503, offline.body);
    assert.match(offline.body, /CR_ERR_DEVICE_OFFLINE/);
    // The agent keeps trying (at its longest backoff, 500 ms here) and is refused every time.
    await waitUntil(() => hub.logs('tunnel refused: device revoked').filter((l) => l.deviceId === a.id).length >= 2, 10_000, 'two refused reconnects');
    const stillOffline = await get(a.id);
    assert.equal(stillOffline.status, 503, stillOffline.body);

    const v5 = await clients.refusal(mqttUrl, { protocolVersion: 5, username: a.id, password: a.secret });
    assert.equal(v5.code, 0x8a, v5.message);
    const v3 = await runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(hub.mqttPort), '-u', a.id, '-P', a.secret, '-t', `devices/${a.id}/x`, '-m', 'y']);
    assert.equal(v3.code, 5, 'MQTT 3.1.1 CONNACK 5: not authorized');
    assert.ok(hub.logs('mqtt connection refused: device revoked').length >= 2);

    const other = await get(b.id);
    assert.equal(other.status, 200);
    assert.match(other.body, /celsius/);
    assert.equal(agentB.logs('disconnected').length, 0, 'the other device never lost its tunnel');
  });

  it('unrevoking lets the same agent back in at its next retry', async () => {
    const r = await cloudrest(['devices', 'unrevoke', a.id, '--data', data.path]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`device ${a.id} re-enabled`));
    await waitUntil(() => agentA.logs('connected').length >= 2, 10_000, 'the agent to connect again');
    assert.equal((await get(a.id)).status, 200);
  });

  it('without a running hub the revocation is recorded and the device is refused when the hub starts', async () => {
    await hub.stop();
    const r = await cloudrest(['devices', 'revoke', b.id, '--data', data.path, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { id: string; revokedAt: string; hub: { reached: boolean; why: string } };
    assert.equal(out.id, b.id);
    assert.equal(out.hub.reached, false);
    assert.match(out.hub.why, /no hub is running on/);
    const listed = JSON.parse((await cloudrest(['devices', 'list', '--data', data.path, '--json'])).stdout) as Array<{ id: string; revokedAt: string | null }>;
    assert.equal(listed.find((d) => d.id === b.id)!.revokedAt, out.revokedAt);

    // The agents reconnect to a hub on the same ports; only the revoked one is refused.
    hub = await startHub(data.path, LOG_EACH_REFUSAL, { http: hub.httpPort, tunnel: hub.tunnelPort });
    await hub.waitForLog('tunnel refused: device revoked', (l) => l.deviceId === b.id, 15_000);
    await waitUntil(() => agentA.logs('connected').length >= 3, 15_000, 'device A back on the new hub');
    token = await login(hub.url, email, password);
    assert.equal((await get(a.id)).status, 200);
    assert.equal((await get(b.id)).status, 503);
  });

  it('names an unknown device with exit 2', async () => {
    const r = await cloudrest(['devices', 'revoke', 'no-such-device', '--data', data.path]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no device no-such-device/);
  });
});
