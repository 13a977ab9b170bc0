import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { writeFilesAtomically } from './atomic-files.js';

const root = mkdtempSync(join(tmpdir(), 'cr-atomic-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('every file gets its content and mode', async () => {
  const a = join(root, 'a.json');
  const b = join(root, 'b');
  writeFileSync(a, 'old a');
  await writeFilesAtomically([{ path: a, content: 'new a', mode: 0o600 }, { path: b, content: 'new b', mode: 0o644 }]);
  assert.equal(readFileSync(a, 'utf8'), 'new a');
  assert.equal(statSync(a).mode & 0o777, 0o600, 'an existing file takes the new mode too');
  assert.equal(readFileSync(b, 'utf8'), 'new b');
  assert.equal(statSync(b).mode & 0o777, 0o644);
});

test('when one file cannot be written, none changes and no temporary file is left', async () => {
  const dir = join(root, 'partial');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  const keep = join(dir, 'credentials.json');
  writeFileSync(keep, 'previous credentials');
  await assert.rejects(writeFilesAtomically([
    { path: keep, content: 'new credentials', mode: 0o600 },
    { path: join(dir, 'missing-folder', 'identity'), content: 'x', mode: 0o600 },
  ]), /ENOENT/);
  assert.equal(readFileSync(keep, 'utf8'), 'previous credentials');
  assert.deepEqual(readdirSync(dir), ['credentials.json']);
});
