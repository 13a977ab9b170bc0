import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cli, cliFails, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';
import { testPostgres, type TestDatabase } from './support/services.js';

describe('a hub on PostgreSQL (--store postgres://...), administered by the CLI on the same --store', () => {
  let db: TestDatabase;
  let data: ReturnType<typeof tempDir>;
  let hub: HubProc | undefined;
  let device: Proc | undefined;
  let agent: Proc | undefined;
  before(async () => {
    db = await testPostgres();
    data = tempDir();
  });
  after(async () => {
    await Promise.all([agent?.stop(), device?.stop()]);
    await hub?.stop();
    data.remove();
    await db.drop();
  });

  it('a user and a device added by the CLI log in and relay through a real agent; --data is created and holds only the admin socket', async () => {
    const email = 'pg-owner@example.com';
    const password = 'correct horse battery';
    await cli(['users', 'add', '--store', db.url, '--email', email, '--password', password]);
    const added = JSON.parse(await cli(['devices', 'add', '--store', db.url, '--name', 'Boiler', '--email', email, '--json'])) as { id: string; secret: string };
    // A --data that does not exist yet, as in docs/scale-out.md's recipe: on PostgreSQL nothing else creates it.
    const nodeData = join(data.path, 'n', 'node1');
    hub = await startHub(nodeData, ['--store', db.url]);
    device = await startDevice(email);
    agent = await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: added.id, secret: added.secret, api: (device as Proc & { url: string }).url });
    const token = await login(hub.url, email, password);
    const r = await fetch(`${hub.url}/v1/devices/${added.id}/api/device`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { email: string }).email, email);
    assert.equal(existsSync(join(nodeData, 'hub.sock')), true, 'the admin socket listens in --data');
    assert.equal(existsSync(join(nodeData, 'cloudrest.db')), false, 'no SQLite database');
    assert.equal(existsSync(join(nodeData, 'token-signing-key.pem')), false, 'the signing key is in PostgreSQL');
    // The hub wrote to the same database the CLI reads.
    const listed = JSON.parse(await cli(['devices', 'list', '--store', db.url, '--json'])) as Array<{ id: string; lastSeen: string | null }>;
    assert.deepEqual(listed.map((d) => d.id), [added.id]);
    assert.notEqual(listed[0]!.lastSeen, null);
  });

  it('the CLI refuses a --store it does not know, naming the flag', async () => {
    const bad = await cliFails(['users', 'list', '--store', 'mysql://somewhere/db']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--store/);
  });
});
