import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addDevice, addUser, cli, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';
import { SseClient } from './support/sse-client.js';

const OWNER = 'owner@example.com';
const PASSWORD = 'correct horse battery';

describe('one agent, two independent hubs (a LAN hub beside a cloud hub)', () => {
  const cloudData = tempDir();
  const lanData = tempDir();
  let cloud: HubProc;
  let lanHub: HubProc;
  let device: Proc & { url: string };
  let agent: Proc;
  let deviceId: string;
  let lanSecret: string;
  let notifyPort: number;
  const tokens: Record<string, string> = {};

  before(async () => {
    await addUser(cloudData.path, OWNER, PASSWORD);
    await addUser(lanData.path, OWNER, PASSWORD);
    const d = await addDevice(cloudData.path, 'Thermostat', OWNER);
    deviceId = d.id;
    // The LAN hub knows the device under the same id, with a secret of its own.
    lanSecret = (JSON.parse(await cli(['devices', 'add', '--data', lanData.path, '--name', 'Thermostat', '--id', deviceId, '--email', OWNER, '--json'])) as { secret: string }).secret;
    [cloud, lanHub] = await Promise.all([startHub(cloudData.path), startHub(lanData.path)]);
    device = await startDevice(OWNER);
    agent = await startAgent({
      hub: `tcp://127.0.0.1:${cloud.tunnelPort}`, deviceId, secret: d.secret, api: device.url,
      extra: ['--also-hub', `ws://${deviceId}:${encodeURIComponent(lanSecret)}@127.0.0.1:${lanHub.httpPort}`, '--notify-port', '0'],
    });
    notifyPort = (await agent.waitForLog('notify listening', (o) => typeof o.port === 'number')).port as number;
    await agent.waitFor(() => agent.logs('connected').length >= 2, 15_000, 'two connections');
    tokens.cloud = await login(cloud.url, OWNER, PASSWORD);
    tokens.lan = await login(lanHub.url, OWNER, PASSWORD);
  });

  after(async () => {
    await Promise.all([agent?.stop(), device?.stop()]);
    await Promise.all([cloud?.stop(), lanHub?.stop()]);
    cloudData.remove();
    lanData.remove();
  });

  const get = (hub: HubProc, token: string, path: string) => fetch(`${hub.url}/v1/devices/${deviceId}/api${path}`, { headers: { authorization: `Bearer ${token}` } });

  it('holds a tunnel to each hub at once, each relaying requests, with the URL credentials kept out of the logs', async () => {
    const hubs = agent.logs('connected').map((l) => l.hub as string).sort();
    assert.deepEqual(hubs, [`tcp://127.0.0.1:${cloud.tunnelPort}`, `ws://127.0.0.1:${lanHub.httpPort}`].sort());
    assert.ok(!agent.lines.some((l) => l.includes(lanSecret)), 'the secret from the --also-hub URL is never logged');
    for (const [hub, token] of [[cloud, tokens.cloud!], [lanHub, tokens.lan!]] as const) {
      const r = await get(hub, token, '/echo?via=both');
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as { url: string }).url, '/echo?via=both');
    }
  });

  it('sends each device notification to both hubs', async () => {
    const streams = await Promise.all([[cloud, tokens.cloud!], [lanHub, tokens.lan!]].map(([hub, token]) =>
      SseClient.open(`${(hub as HubProc).url}/v1/devices/${deviceId}/events`, { authorization: `Bearer ${token as string}` })));
    try {
      const r = await fetch(`http://127.0.0.1:${notifyPort}/notify`, { method: 'POST', body: '{"door":"open"}' });
      assert.equal(r.status, 202);
      const door = (e: { event: string; data: string }): boolean => e.event === 'notification' && (JSON.parse(e.data) as { message: string }).message === '{"door":"open"}';
      for (const s of streams) assert.equal((await s.until((ev) => ev.some(door))).filter(door).length, 1);
    } finally {
      for (const s of streams) s.close();
    }
  });

  it('keeps serving through the LAN hub when the cloud hub dies, and the agent retries the cloud alone', async () => {
    await cloud.stop('SIGKILL');
    await agent.waitForLog('disconnected');
    for (let i = 0; i < 10; i++) {
      const r = await get(lanHub, tokens.lan!, `/echo?i=${i}`);
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as { url: string }).url, `/echo?i=${i}`);
    }
    await agent.waitForLog('hub unreachable', (o) => o.hub === `tcp://127.0.0.1:${cloud.tunnelPort}`);
    assert.equal(agent.logs('disconnected').length, 1, 'only the cloud connection dropped');
    const devices = await fetch(`${lanHub.url}/v1/devices`, { headers: { authorization: `Bearer ${tokens.lan}` } });
    assert.deepEqual(((await devices.json()) as { devices: Array<{ online: boolean }> }).devices.map((x) => x.online), [true]);
  });
});
