import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MqttClients, nextMessage } from './support/mqtt-peers.js';
import { addDevice, addUser, cli, cliFails, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';
import { testPostgres, type TestDatabase } from './support/services.js';

const EMAIL = 'mover@example.com';
const PASSWORD = 'mover password 1';

describe('cloudrest migrate: a hub moves from SQLite to PostgreSQL without losing anything', () => {
  let sqliteData: ReturnType<typeof tempDir>;
  let pgData: ReturnType<typeof tempDir>;
  let db: TestDatabase;
  let hub: HubProc | undefined;
  let device: (Proc & { url: string }) | undefined;
  let agent: Proc | undefined;
  const clients = new MqttClients();
  before(async () => {
    sqliteData = tempDir('cloudrest-migrate-sqlite-');
    pgData = tempDir('cloudrest-migrate-pg-');
    db = await testPostgres();
  });
  after(async () => {
    await clients.closeAll();
    await Promise.all([agent?.stop(), device?.stop()]);
    await hub?.stop();
    sqliteData.remove();
    pgData.remove();
    await db.drop();
  });

  it('the old token, device secret, OAuth client, MQTT session with its queue and retained messages all work on the PostgreSQL hub; a second migrate is refused', async () => {
    await addUser(sqliteData.path, EMAIL, PASSWORD);
    const { id: deviceId, secret } = await addDevice(sqliteData.path, 'Heater', EMAIL);
    const client = JSON.parse(await cli(['oauth-clients', 'add', '--data', sqliteData.path, '--name', 'Automations', '--redirect-uri', 'https://a.example/cb', '--json'])) as { client_id: string };
    hub = await startHub(sqliteData.path);
    const token = await login(hub.url, EMAIL, PASSWORD);
    const session = { protocolVersion: 5 as const, clientId: 'mover-1', clean: false, properties: { sessionExpiryInterval: 3600 }, username: EMAIL, password: token };
    const first = await clients.connect(`mqtt://127.0.0.1:${hub.mqttPort}`, session);
    await first.subscribeAsync(`devices/${deviceId}/cmd`, { qos: 1 });
    await first.endAsync();
    const post = async (path: string, body: string) => {
      const r = await fetch(`${hub!.url}/v1/topics/${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body });
      assert.equal(r.status, 200, await r.text());
    };
    for (const body of ['one', 'two', 'three']) await post(`devices/${deviceId}/cmd?qos=1`, body);
    await post(`devices/${deviceId}/config?qos=1&retain=true`, '{"interval":30}');
    assert.equal(await hub.stop(), 0);
    hub = undefined;

    const copied = await cli(['migrate', '--from', `sqlite:${sqliteData.path}`, '--to', db.url]);
    assert.match(copied, /users\s+1\n/);
    assert.match(copied, /devices\s+1\n/);
    assert.match(copied, /mqtt_queue\s+3\n/);
    assert.match(copied, /mqtt_retained\s+1\n/);
    assert.match(copied, /row count in the target matches the source/);

    // A new --data folder: everything must come from PostgreSQL.
    hub = await startHub(pgData.path, ['--store', db.url]);
    const devices = await fetch(`${hub.url}/v1/devices`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(devices.status, 200, 'the token issued by the SQLite hub');
    assert.deepEqual(((await devices.json()) as { devices: Array<{ id: string }> }).devices.map((d) => d.id), [deviceId]);

    device = await startDevice(EMAIL);
    agent = await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId, secret, api: device.url });
    const relayed = await fetch(`${hub.url}/v1/devices/${deviceId}/api/device`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(relayed.status, 200);

    const again = await clients.connectCollecting(`mqtt://127.0.0.1:${hub.mqttPort}`, session);
    assert.equal(again.sessionPresent, true);
    for (let i = 0; i < 100 && again.messages.length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(again.messages.map((m) => m.payload), ['one', 'two', 'three']);
    const fresh = await clients.connect(`mqtt://127.0.0.1:${hub.mqttPort}`, { protocolVersion: 4, username: EMAIL, password: token });
    const retained = nextMessage(fresh, (t) => t.endsWith('/config'));
    await fresh.subscribeAsync(`devices/${deviceId}/config`, { qos: 1 });
    assert.deepEqual([(await retained).payload, (await retained).retain], ['{"interval":30}', true]);

    const oauthClients = JSON.parse(await cli(['oauth-clients', 'list', '--store', db.url, '--json'])) as Array<{ client_id: string }>;
    assert.deepEqual(oauthClients.map((c) => c.client_id), [client.client_id]);

    const refused = await cliFails(['migrate', '--from', `sqlite:${sqliteData.path}`, '--to', db.url]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /not empty/);
  });

  it('is listed in cloudrest --help, and its own --help names every flag', async () => {
    assert.match(await cli(['--help']), /\n {2}migrate +copy a hub's SQLite state/);
    const help = await cli(['migrate', '--help']);
    for (const flag of ['--from', '--to', '--force']) assert.ok(help.includes(flag), `${flag} in:\n${help}`);
  });

  it('refuses a --from or --to of the wrong kind with a clear message', async () => {
    const from = await cliFails(['migrate', '--from', sqliteData.path, '--to', db.url]);
    assert.equal(from.code, 2);
    assert.match(from.stderr, /--from must be sqlite:DIR/);
    const to = await cliFails(['migrate', '--from', `sqlite:${sqliteData.path}`, '--to', 'mysql://x/y']);
    assert.match(to.stderr, /--to must be a postgres:\/\//);
  });
});
