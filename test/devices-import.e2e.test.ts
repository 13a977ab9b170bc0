import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'csv-parse/sync';
import { cli, startAgent, startDevice, startHub, tempDir } from './support/procs.js';
import { cloudrest } from './support/factory.js';

const listIds = async (data: string) => (JSON.parse(await cli(['devices', 'list', '--data', data, '--json'])) as Array<{ id: string }>).map((d) => d.id).sort();

describe('cloudrest devices import', () => {
  let data: ReturnType<typeof tempDir>;
  let work: ReturnType<typeof tempDir>;
  const csv = (name: string, text: string) => {
    const p = join(work.path, name);
    writeFileSync(p, text);
    return p;
  };

  before(() => {
    data = tempDir();
    work = tempDir();
  });
  after(() => {
    data.remove();
    work.remove();
  });

  it('a file with bad rows imports nothing and names every bad row by its line', async () => {
    const file = csv('bad.csv', [
      'id,name,email',
      'ok-1,Kitchen,ada@example.com',
      'bad id,Hall,',
      'ok-2,"Garage, left",not-an-email',
      'ok-1,Again,',
      '',
    ].join('\n'));
    const r = await cloudrest(['devices', 'import', file, '--data', data.path]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /nothing imported: 3 rows with problems/);
    assert.match(r.stderr, /line 3: a device id is 1-128 characters/);
    assert.match(r.stderr, /line 4: not an email address: not-an-email/);
    assert.match(r.stderr, /line 5: device id ok-1 is already on line 2/);
    assert.deepEqual(await listIds(data.path), []);
  });

  it('an unknown column or broken quoting is refused before anything is written', async () => {
    const col = await cloudrest(['devices', 'import', csv('col.csv', 'id,serial\nx,1\n'), '--data', data.path]);
    assert.equal(col.code, 2);
    assert.match(col.stderr, /line 1: unknown column "serial"/);
    const quote = await cloudrest(['devices', 'import', csv('quote.csv', 'id,name\nx,"unclosed\n'), '--data', data.path]);
    assert.equal(quote.code, 2);
    assert.match(quote.stderr, /quote\.csv: .*[Qq]uote/);
    assert.deepEqual(await listIds(data.path), []);
  });

  it('a good file imports every device, quoting and missing ids included, and prints ids and secrets once', async () => {
    const file = csv('good.csv', '\ufeffid,name,email\nsn-1,"Garage, left",Ada@Example.com\n,"Porch ""north""",\nsn-3,,\n');
    const r = await cloudrest(['devices', 'import', file, '--data', data.path, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Array<{ line: number; id: string; name: string; email: string | null; secret: string }>;
    assert.deepEqual(rows.map((x) => [x.line, x.name, x.email]), [[2, 'Garage, left', 'ada@example.com'], [3, 'Porch "north"', null], [4, 'sn-3', null]]);
    assert.equal(rows[0]!.id, 'sn-1');
    assert.match(rows[1]!.id, /^d_[a-z2-7]{16}$/);
    for (const x of rows) assert.match(x.secret, /^[A-Za-z0-9_][A-Za-z0-9_-]{42}$/);
    assert.deepEqual(await listIds(data.path), rows.map((x) => x.id).sort());
  });

  it('an id that already exists is an error naming its row, and nothing of that file is imported', async () => {
    const r = await cloudrest(['devices', 'import', csv('dup.csv', 'id\nsn-9\nsn-1\n'), '--data', data.path]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /line 3: a device with id sn-1 already exists/);
    assert.ok(!(await listIds(data.path)).includes('sn-9'));
  });

  it('--out writes a new CSV file, mode 0600, and never over an existing file', async () => {
    const out = join(work.path, 'secrets.csv');
    const r = await cloudrest(['devices', 'import', csv('more.csv', 'name\nAttic\nCellar\n'), '--data', data.path, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /imported 2 devices; ids and secrets written to .*secrets\.csv \(mode 0600\)/);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const written = parse(readFileSync(out, 'utf8'), { columns: true }) as Array<{ id: string; name: string; secret: string }>;
    assert.deepEqual(written.map((x) => x.name), ['Attic', 'Cellar']);
    const before = await listIds(data.path);
    const again = await cloudrest(['devices', 'import', csv('more2.csv', 'name\nLoft\n'), '--data', data.path, '--out', out]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /--out .* exists; secrets are never written over a file/);
    assert.deepEqual(await listIds(data.path), before);
    assert.deepEqual((parse(readFileSync(out, 'utf8'), { columns: true }) as unknown[]).length, 2, 'the earlier secrets are intact');
  });

  it("an imported device's printed secret connects its agent to the hub", async () => {
    const r = await cloudrest(['devices', 'import', '-', '--data', data.path], {}, 'id,name\nstdin-1,From stdin\n');
    assert.equal(r.code, 0, r.stderr);
    const [row] = parse(r.stdout, { columns: true }) as Array<{ id: string; secret: string }>;
    assert.equal(row!.id, 'stdin-1');
    const hub = await startHub(data.path);
    const device = await startDevice(null);
    try {
      const agent = await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: row!.id, secret: row!.secret, api: device.url });
      await agent.stop();
    } finally {
      await device.stop();
      await hub.stop();
    }
  });
});
