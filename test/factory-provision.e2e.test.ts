import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addUser, cli, curl, login, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';
import { addFactoryKey, cloudrest, provision, startAgentFrom } from './support/factory.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const mode = (p: string) => statSync(p).mode & 0o777;
const readCreds = (dir: string) => JSON.parse(readFileSync(join(dir, 'credentials.json'), 'utf8')) as { deviceId: string; secret: string; hub: string[]; identity: string };
const filesOf = (dir: string) => [readFileSync(join(dir, 'credentials.json'), 'utf8'), readFileSync(join(dir, 'identity'), 'utf8')];

describe('factory provisioning: cloudrest agent provision against a real hub', () => {
  const email = 'factory-owner@example.com';
  const password = 'correct horse battery';
  let data: ReturnType<typeof tempDir>;
  let work: ReturnType<typeof tempDir>;
  let hub: HubProc;
  let device: Proc & { url: string };
  let key: { id: string; key: string };
  const agents: Proc[] = [];

  before(async () => {
    data = tempDir();
    work = tempDir();
    key = await addFactoryKey(data.path);
    await addUser(data.path, email, password);
    hub = await startHub(data.path);
    device = await startDevice(email);
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await device?.stop();
    await hub?.stop();
    data?.remove();
    work?.remove();
  });

  it('a device provisioned from its flash serial comes online from its credentials folder, and a relayed curl request reaches it', async () => {
    // As the seed's `cat /sys/class/spi_master/spi0/spi0.0/machine_udid` prints it.
    const idFile = join(work.path, 'machine_udid');
    writeFileSync(idFile, 'ef6070a8430f2b21\n');
    const out = join(work.path, 'device-1');
    const r = await provision({ factory: hub.url, key: key.key, idFile, out, extra: ['--name', 'Thermostat 7', '--email', email] });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /device ef6070a8430f2b21 provisioned\n/);

    assert.equal(mode(out), 0o700);
    assert.equal(mode(join(out, 'credentials.json')), 0o600);
    assert.equal(mode(join(out, 'identity')), 0o600);
    assert.equal(readFileSync(join(out, 'identity'), 'utf8'), `${sha256('ef6070a8430f2b21')}\n`, 'the identity file is the SHA-256 of the id (seed 002)');
    const creds = readCreds(out);
    assert.equal(creds.deviceId, 'ef6070a8430f2b21');
    assert.deepEqual(creds.hub, [`ws://127.0.0.1:${hub.httpPort}/v1/agent`]);
    assert.match(creds.secret, /^[0-9a-f]{64}$/);
    assert.equal(readFileSync(idFile, 'utf8'), 'ef6070a8430f2b21\n', 'an id file that exists is only read');

    const listed = JSON.parse(await cli(['devices', 'list', '--data', data.path, '--json'])) as Array<{ id: string; name: string; email: string; factoryKeyId: string }>;
    assert.deepEqual(listed.map((d) => [d.id, d.name, d.email, d.factoryKeyId]), [['ef6070a8430f2b21', 'Thermostat 7', email, key.id]]);

    const agent = await startAgentFrom(out, device.url);
    agents.push(agent);
    assert.equal((await agent.waitForLog('connected')).hub, creds.hub[0]);
    const token = await login(hub.url, email, password);
    const { stdout } = await curl(['-H', `Authorization: Bearer ${token}`, `${hub.url}/v1/devices/ef6070a8430f2b21/api/temperature`]);
    assert.equal(typeof (JSON.parse(stdout) as { celsius: number }).celsius, 'number');
  });

  it('provisioning again answers the same secret and leaves the same files', async () => {
    const out = join(work.path, 'device-1');
    const before = filesOf(out);
    const r = await provision({ factory: hub.url, key: key.key, idFile: join(work.path, 'machine_udid'), out, extra: ['--name', 'Thermostat 7', '--email', email] });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /already registered with this factory key: same secret/);
    assert.deepEqual(filesOf(out), before);
    // The agent started from these files is still the one the hub knows.
    const { stdout } = await curl(['-H', `Authorization: Bearer ${await login(hub.url, email, password)}`, `${hub.url}/v1/devices/ef6070a8430f2b21/api/temperature`]);
    assert.match(stdout, /celsius/);
  });

  it('without an id file a new id is made, registered and written there; the next run reuses it', async () => {
    const idFile = join(work.path, 'etc', 'device-id');
    mkdirSync(join(work.path, 'etc'));
    const out = join(work.path, 'device-2');
    const first = await provision({ factory: hub.url, key: key.key, idFile, out });
    assert.equal(first.code, 0, first.stderr);
    const id = readFileSync(idFile, 'utf8').trim();
    assert.match(id, /^d_[a-z2-7]{16}$/);
    assert.match(first.stdout, new RegExp(`device ${id} provisioned; new id written to ${idFile}`));
    assert.equal(readCreds(out).deviceId, id);
    const files = filesOf(out);
    const second = await provision({ factory: hub.url, key: key.key, idFile, out });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(readFileSync(idFile, 'utf8').trim(), id);
    assert.deepEqual(filesOf(out), files);
  });

  it('a wrong key or a revoked key is refused with exit 1 and the reason, and nothing is written', async () => {
    const idFile = join(work.path, 'never-written-id');
    const out = join(work.path, 'never-written');
    const wrong = await provision({ factory: hub.url, key: 'crfk_not-a-key-anyone-issued', idFile, out });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /the hub refused to provision d_\w+: 401 CR_ERR_FACTORY_KEY_INVALID/);
    assert.match(wrong.stderr, /Nothing was written/);

    const revoked = await addFactoryKey(data.path, 'Old line');
    const rv = await cloudrest(['factory-keys', 'revoke', revoked.id, '--data', data.path]);
    assert.equal(rv.code, 0, rv.stderr);
    assert.match(rv.stdout, /revoked .*the devices it provisioned keep working/);
    const refused = await provision({ factory: hub.url, key: revoked.key, idFile, out });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /401 CR_ERR_FACTORY_KEY_REVOKED/);
    assert.equal(existsSync(out), false, 'no output folder');
    assert.equal(existsSync(idFile), false, 'no id file');
  });

  it('a rotated key: the old value stops working, the new one re-provisions its devices with the same secret', async () => {
    const line = await addFactoryKey(data.path, 'Line 2');
    const idFile = join(work.path, 'serial-3');
    writeFileSync(idFile, 'serial-0003');
    const out = join(work.path, 'device-3');
    assert.equal((await provision({ factory: hub.url, key: line.key, idFile, out })).code, 0);
    const files = filesOf(out);

    const rotated = JSON.parse(await cli(['factory-keys', 'rotate', line.id, '--data', data.path, '--json'])) as { id: string; key: string };
    assert.equal(rotated.id, line.id);
    assert.notEqual(rotated.key, line.key);
    const old = await provision({ factory: hub.url, key: line.key, idFile, out });
    assert.equal(old.code, 1);
    assert.match(old.stderr, /CR_ERR_FACTORY_KEY_INVALID/);
    const again = await provision({ factory: hub.url, key: rotated.key, idFile, out });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(filesOf(out), files);

    const keys = JSON.parse(await cli(['factory-keys', 'list', '--data', data.path, '--json'])) as Array<{ id: string; rotatedAt: string | null; devices: number }>;
    const row = keys.find((k) => k.id === line.id)!;
    assert.equal(row.devices, 1);
    assert.ok(row.rotatedAt !== null);
  });

  it('an id taken by another factory key, or by a device added outside the factory, is refused with 409', async () => {
    const other = await addFactoryKey(data.path, 'Another plant');
    const idFile = join(work.path, 'machine_udid');
    const taken = await provision({ factory: hub.url, key: other.key, idFile, out: join(work.path, 'taken') });
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /409 CR_ERR_DEVICE_ID_TAKEN/);

    await cli(['devices', 'add', '--data', data.path, '--name', 'Bench unit', '--id', 'bench-unit-1']);
    const manual = join(work.path, 'manual-id');
    writeFileSync(manual, 'bench-unit-1\n');
    const r = await provision({ factory: hub.url, key: key.key, idFile: manual, out: join(work.path, 'manual') });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /409 CR_ERR_DEVICE_ID_TAKEN/);
    assert.equal(existsSync(join(work.path, 'manual')), false);
  });

  it('an unreachable hub: exit 1, a clear message, nothing written', async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as { port: number }).port;
    await new Promise((r) => s.close(r));
    const out = join(work.path, 'unreachable');
    const r = await provision({ factory: `http://127.0.0.1:${port}`, key: key.key, idFile: join(work.path, 'unreachable-id'), out });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`cannot reach the hub at http://127.0.0.1:${port}/v1/factory/devices: .*ECONNREFUSED`));
    assert.equal(existsSync(out), false);
    assert.equal(existsSync(join(work.path, 'unreachable-id')), false);
  });

  it('an id file that holds no usable id, or a folder with another device, stops with exit 2 before the hub is asked', async () => {
    const bad = join(work.path, 'bad-id');
    writeFileSync(bad, 'not an id!\n');
    const r = await provision({ factory: hub.url, key: key.key, idFile: bad, out: join(work.path, 'bad') });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--id-file .*bad-id: "not an id!" is not a usable device id/);

    const otherId = join(work.path, 'other-id');
    writeFileSync(otherId, 'another-serial');
    const clash = await provision({ factory: hub.url, key: key.key, idFile: otherId, out: join(work.path, 'device-1') });
    assert.equal(clash.code, 2);
    assert.match(clash.stderr, /holds the credentials of device ef6070a8430f2b21, not another-serial/);
    const devices = JSON.parse(await cli(['devices', 'list', '--data', data.path, '--json'])) as Array<{ id: string }>;
    assert.ok(!devices.some((d) => d.id === 'another-serial' || d.id === 'not an id!'));
  });

  it('the agent takes flags over its credentials folder, and says so when a folder has no credentials', async () => {
    const empty = join(work.path, 'empty');
    mkdirSync(empty);
    const none = await cloudrest(['agent', '--credentials', empty, '--api', device.url]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--credentials .*empty: no credentials.json there; run "cloudrest agent provision" first/);

    const tcp = `tcp://127.0.0.1:${hub.tunnelPort}`;
    const agent = await startAgentFrom(join(work.path, 'device-2'), device.url, { extra: ['--hub', tcp] });
    agents.push(agent);
    assert.equal((await agent.waitForLog('connected')).hub, tcp);
  });
});
