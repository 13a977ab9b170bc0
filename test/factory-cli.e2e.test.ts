import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { startHub, tempDir } from './support/procs.js';
import { addFactoryKey, cloudrest, runToEnd } from './support/factory.js';
import { AGENT_BUNDLE } from './support/procs.js';

describe('factory commands on the command line', () => {
  let data: ReturnType<typeof tempDir>;
  before(() => {
    data = tempDir();
  });
  after(() => data.remove());

  it('every new command and option has --help with its environment variable', async () => {
    const help = async (args: string[]) => (await cloudrest([...args, '--help'])).stdout;
    assert.match(await help(['factory-keys', 'add']), /--name VALUE .*\[default: factory\].*CLOUDREST_NAME/);
    for (const sub of ['list', 'revoke', 'rotate']) assert.match(await help(['factory-keys', sub]), /--data VALUE .*CLOUDREST_DATA/);
    assert.match(await help(['devices', 'import']), /--out VALUE .*CLOUDREST_OUT/);
    assert.match(await help(['devices', 'revoke']), /Usage: cloudrest devices revoke ID/);
    assert.match(await help(['devices', 'unrevoke']), /Usage: cloudrest devices unrevoke ID/);
    const provision = await help(['agent', 'provision']);
    for (const env of ['CLOUDREST_FACTORY', 'CLOUDREST_FACTORY_KEY', 'CLOUDREST_ID_FILE', 'CLOUDREST_OUT']) assert.ok(provision.includes(env), env);
    assert.match(await help(['agent']), /--credentials VALUE .*CLOUDREST_CREDENTIALS/);
    const hub = await help(['hub']);
    assert.match(hub, /--factory-max-failures N .*\[default: 10\].*CLOUDREST_FACTORY_MAX_FAILURES/);
    assert.match(hub, /--admin-socket .*\[default: true\]/);
    assert.match((await cloudrest(['--help'])).stdout, /factory-keys add\|list\|revoke\|rotate/);
  });

  it('a factory key is printed once and stored only as its hash; list, rotate and revoke report its state', async () => {
    const add = await cloudrest(['factory-keys', 'add', '--data', data.path, '--name', 'Plant 1']);
    assert.equal(add.code, 0, add.stderr);
    const id = /id: {2}(fk_\w+)/.exec(add.stdout)![1]!;
    const key = /key: (crfk_[\w-]{43}) /.exec(add.stdout)![1]!;
    const db = new Database(join(data.path, 'cloudrest.db'), { readonly: true });
    const rows = db.prepare('select * from factory_keys').all() as Array<Record<string, string>>;
    db.close();
    assert.equal(rows.length, 1);
    assert.ok(!JSON.stringify(rows).includes(key.slice(5)), 'the key itself is nowhere in the database');
    assert.match(rows[0]!.key_hash!, /^[0-9a-f]{64}$/);

    assert.match((await cloudrest(['factory-keys', 'list', '--data', data.path])).stdout, new RegExp(`${id} {2}Plant 1 {2}created \\S+ {2}active {2}0 devices`));
    const rotated = await cloudrest(['factory-keys', 'rotate', id, '--data', data.path]);
    assert.match(rotated.stdout, /factory key rotated .*\n {2}id: {2}fk_\w+\n {2}key: crfk_/);
    assert.doesNotMatch(rotated.stdout, new RegExp(key));
    assert.match((await cloudrest(['factory-keys', 'list', '--data', data.path])).stdout, /rotated \S+ {2}0 devices/);
    assert.equal((await cloudrest(['factory-keys', 'revoke', id, '--data', data.path])).code, 0);
    assert.match((await cloudrest(['factory-keys', 'list', '--data', data.path])).stdout, /REVOKED \S+/);
  });

  it('refuses what it cannot do with exit 2 and a reason', async () => {
    const k = await addFactoryKey(data.path, 'To revoke');
    await cloudrest(['factory-keys', 'revoke', k.id, '--data', data.path]);
    const rotate = await cloudrest(['factory-keys', 'rotate', k.id, '--data', data.path]);
    assert.equal(rotate.code, 2);
    assert.match(rotate.stderr, /is revoked; add a new one instead/);
    const unknown = await cloudrest(['factory-keys', 'revoke', 'fk_nope', '--data', data.path]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no factory key fk_nope/);
    const noId = await cloudrest(['factory-keys', 'revoke', '--data', data.path]);
    assert.equal(noId.code, 2);
    assert.match(noId.stderr, /expected one factory key id/);
    const badName = await cloudrest(['factory-keys', 'add', '--data', data.path, '--name', 'x'.repeat(200)]);
    assert.equal(badName.code, 2);
    const missing = await runToEnd([AGENT_BUNDLE, 'provision', '--factory', 'http://127.0.0.1:1', '--id-file', 'x', '--out', 'y'], { CLOUDREST_FACTORY_KEY: '' });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing required option --factory-key \(or CLOUDREST_FACTORY_KEY/);
    const scheme = await runToEnd([AGENT_BUNDLE, 'provision', '--factory', 'ftp://hub', '--factory-key', 'k', '--id-file', 'x', '--out', 'y']);
    assert.equal(scheme.code, 2);
    assert.match(scheme.stderr, /--factory ftp:\/\/hub: expected an http:\/\/ or https:\/\/ URL/);
  });

  it('agent provision takes its options from a config file and CLOUDREST_* variables too', async () => {
    const k = await addFactoryKey(data.path, 'Config file line');
    const hub = await startHub(data.path);
    try {
      const cfg = join(data.path, 'provision.json');
      const out = join(data.path, 'from-config');
      writeFileSync(join(data.path, 'serial'), 'cfg-serial-1\n');
      writeFileSync(cfg, JSON.stringify({ factory: hub.url, idFile: join(data.path, 'serial'), name: 'From a file' }));
      const r = await runToEnd([AGENT_BUNDLE, 'provision', '--config', cfg], { CLOUDREST_FACTORY_KEY: k.key, CLOUDREST_OUT: out });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((JSON.parse(readFileSync(join(out, 'credentials.json'), 'utf8')) as { deviceId: string }).deviceId, 'cfg-serial-1');
      const listed = JSON.parse((await cloudrest(['devices', 'list', '--data', data.path, '--json'])).stdout) as Array<{ id: string; name: string }>;
      assert.deepEqual(listed.map((d) => [d.id, d.name]), [['cfg-serial-1', 'From a file']]);
    } finally {
      await hub.stop();
    }
  });
});
