import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { askHub } from './admin-client.js';
import { ADMIN_SOCKET_NAME, startAdminSocket } from './admin-socket.js';

const root = mkdtempSync(join(tmpdir(), 'cr-admin-'));
after(() => rmSync(root, { recursive: true, force: true }));
const log = pino({ level: 'silent' });
let n = 0;
const dataDir = () => {
  const d = join(root, String(++n));
  mkdirSync(d);
  return d;
};

/** Sends raw bytes, returns everything the hub answered before closing or within `ms`. */
function raw(path: string, bytes: string, ms = 500): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(path);
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (got += c));
    s.on('error', () => resolve(got));
    s.on('close', () => resolve(got));
    s.once('connect', () => s.write(bytes));
    setTimeout(() => s.destroy(), ms);
  });
}

test('the hub answers device-updated requests on a socket only its user can open, and removes it on close', async () => {
  const dir = dataDir();
  const seen: string[] = [];
  const admin = await startAdminSocket(join(dir, ADMIN_SOCKET_NAME), { deviceUpdated: async (id) => (seen.push(id), { revoked: true, tunnelClosed: true }) }, log);
  assert.ok(admin);
  assert.equal(statSync(admin.path).mode & 0o777, 0o600);
  const r = await askHub(dir, { op: 'device-updated', id: 'd_1' });
  assert.deepEqual(r, { reached: true, answer: { ok: true, revoked: true, tunnelClosed: true } });
  assert.deepEqual(seen, ['d_1']);
  await admin.close();
  assert.equal(existsSync(admin.path), false);
  const gone = await askHub(dir, { op: 'device-updated', id: 'd_1' });
  assert.equal(gone.reached, false);
  assert.match((gone as { why: string }).why, /no hub is running on/);
});

test('bad requests get an error answer and the channel carries on; an oversized line closes the connection', async () => {
  const dir = dataDir();
  const admin = (await startAdminSocket(join(dir, ADMIN_SOCKET_NAME), { deviceUpdated: async (id) => ({ id }) }, log))!;
  try {
    const answers = (await raw(admin.path, 'not json\n{"op":"drop-tables"}\n{"op":"device-updated"}\n{"op":"device-updated","id":"d_2"}\n')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(answers, [
      { ok: false, error: 'not JSON' },
      { ok: false, error: 'unknown op "drop-tables"' },
      { ok: false, error: 'id: a device id is required' },
      { ok: true, id: 'd_2' },
    ]);
    const big = await raw(admin.path, 'x'.repeat(10_000), 2000);
    assert.match(big, /request line over 4096 bytes/);
    assert.deepEqual(await askHub(dir, { op: 'device-updated', id: 'd_3' }), { reached: true, answer: { ok: true, id: 'd_3' } });
  } finally {
    await admin.close();
  }
});

test('a stale socket file left by a crashed hub is replaced; a live one is left to its hub', async () => {
  const dir = dataDir();
  const path = join(dir, ADMIN_SOCKET_NAME);
  writeFileSync(path, '');
  // A regular file is not a socket: bind fails with EADDRINUSE, nothing answers, so it is stale.
  const first = await startAdminSocket(path, { deviceUpdated: async () => ({ first: true }) }, log);
  assert.ok(first);
  try {
    const second = await startAdminSocket(path, { deviceUpdated: async () => ({ second: true }) }, log);
    assert.equal(second, undefined);
    assert.deepEqual(await askHub(dir, { op: 'device-updated', id: 'd' }), { reached: true, answer: { ok: true, first: true } });
  } finally {
    await first.close();
  }
});

test('a data folder path too long for a unix socket leaves the channel off instead of failing the hub', async () => {
  const long = join(root, 'x'.repeat(120), ADMIN_SOCKET_NAME);
  assert.equal(await startAdminSocket(long, { deviceUpdated: async () => ({}) }, log), undefined);
});

test('a hub that never answers does not hang the command', async () => {
  const dir = dataDir();
  const silent = createServer(() => {});
  await new Promise<void>((r) => silent.listen(join(dir, ADMIN_SOCKET_NAME), r));
  try {
    const started = Date.now();
    const r = await askHub(dir, { op: 'device-updated', id: 'd' }, 300);
    assert.equal(r.reached, false);
    assert.match((r as { why: string }).why, /no answer from .* within 300 ms/);
    assert.ok(Date.now() - started < 2000);
  } finally {
    silent.close();
  }
});
