import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERRORS } from '../src/errors.js';

test('docs/api.md lists every error code with its status, and no code the hub does not have', () => {
  const doc = readFileSync(new URL('../docs/api.md', import.meta.url), 'utf8');
  const rows = new Map([...doc.matchAll(/^\| `(CR_ERR_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]));
  const expected = new Map(Object.entries(ERRORS).map(([code, e]) => [code, e.status]));
  assert.deepEqual(rows, expected);
});
