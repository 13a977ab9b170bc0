import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { CLI, Proc, cli, cliFails, curl, tempDir } from './support/procs.js';

describe('command line', () => {
  let data: ReturnType<typeof tempDir>;
  before(() => {
    data = tempDir();
  });
  after(() => data.remove());

  it('prints help for every command, listing flags with their environment variables', async () => {
    assert.match(await cli(['--help']), /Commands:[\s\S]*hub[\s\S]*agent[\s\S]*users[\s\S]*devices/);
    const hub = await cli(['hub', '--help']);
    assert.match(hub, /--http-port N .*\[default: 8080\].*CLOUDREST_HTTP_PORT/);
    assert.match(hub, /--tunnel-port N .*\[default: 7443\].*CLOUDREST_TUNNEL_PORT/);
    assert.match(await cli(['agent', '--help']), /--hub VALUE[\s\S]*CLOUDREST_DEVICE_ID/);
    assert.match(await cli(['users', 'add', '--help']), /--email/);
    assert.match(await cli(['devices', 'add', '--help']), /--name/);
    assert.match(await cli(['devices', 'list', '--help']), /--json/);
  });

  it('adds users and devices; the device secret is printed once and only its hash is stored', async () => {
    await cli(['users', 'add', '--data', data.path, '--email', 'Cli@Example.com', '--password', 'long enough password']);
    const users = JSON.parse(await cli(['users', 'list', '--data', data.path, '--json'])) as Array<{ email: string }>;
    assert.deepEqual(users.map((u) => u.email), ['cli@example.com']);
    const d = JSON.parse(await cli(['devices', 'add', '--data', data.path, '--name', 'Kitchen', '--email', 'cli@example.com', '--json'])) as { id: string; secret: string };
    assert.match(d.id, /^d_/);
    assert.ok(d.secret.length >= 43 && !d.secret.startsWith('-'));
    const list = JSON.parse(await cli(['devices', 'list', '--data', data.path, '--json'])) as Array<{ id: string; name: string }>;
    assert.deepEqual(list.map((x) => [x.id, x.name]), [[d.id, 'Kitchen']]);
    const db = new Database(join(data.path, 'cloudrest.db'), { readonly: true });
    const rows = db.prepare('select secret_hash from devices').all() as Array<{ secret_hash: string }>;
    const users2 = db.prepare('select password_hash from users').all() as Array<{ password_hash: string }>;
    db.close();
    assert.equal(rows.length, 1);
    assert.match(rows[0]!.secret_hash, /^[0-9a-f]{64}$/);
    assert.notEqual(rows[0]!.secret_hash, d.secret);
    assert.match(users2[0]!.password_hash, /^scrypt\$/);
  });

  it('refuses bad input with a clear message and exit code 2', async () => {
    const dup = await cliFails(['users', 'add', '--data', data.path, '--email', 'cli@example.com', '--password', 'long enough password']);
    assert.equal(dup.code, 2);
    assert.match(dup.stderr, /already exists/);
    const short = await cliFails(['users', 'add', '--data', data.path, '--email', 'x@example.com', '--password', 'short']);
    assert.match(short.stderr, /at least 8 characters/);
    const unknown = await cliFails(['hub', '--no-such-flag']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no-such-flag/);
    const badPort = await cliFails(['hub', '--http-port', 'eighty']);
    assert.match(badPort.stderr, /--http-port: expected an integer/);
    const missing = await cliFails(['agent', '--hub', 'tcp://127.0.0.1:1']);
    assert.match(missing.stderr, /missing required option --device-id/);
  });

  it('takes options from a config file, overridden by CLOUDREST_* variables, overridden by flags', async () => {
    const cfg = join(data.path, 'hub.json');
    const [fileDir, envDir, flagDir] = ['from-file', 'from-env', 'from-flag'].map((n) => join(data.path, n)) as [string, string, string];
    writeFileSync(cfg, JSON.stringify({ data: fileDir, host: '127.0.0.1', httpPort: 0, tunnelPort: 0, logLevel: 'info' }));
    const dataUsed = async (args: string[], env: NodeJS.ProcessEnv) => {
      const hub = new Proc(spawn(process.execPath, [CLI, 'hub', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }), 'hub');
      try {
        return (await hub.waitForLog('hub listening')).data;
      } finally {
        await hub.stop();
      }
    };
    assert.equal(await dataUsed(['--config', cfg], process.env), fileDir);
    const env = { ...process.env, CLOUDREST_CONFIG: cfg, CLOUDREST_DATA: envDir };
    assert.equal(await dataUsed([], env), envDir);
    assert.equal(await dataUsed(['--data', flagDir], env), flagDir);
    const bad = await cliFails(['hub'], { ...env, CLOUDREST_REQUEST_TIMEOUT_MS: 'not a number' });
    assert.match(bad.stderr, /CLOUDREST_REQUEST_TIMEOUT_MS: expected an integer/);
    const badFile = join(data.path, 'bad.json');
    writeFileSync(badFile, JSON.stringify({ httpPortt: 1 }));
    assert.match((await cliFails(['hub', '--config', badFile])).stderr, /unknown key "httpPortt"/);
  });

  it('says which port is taken when the HTTP port is in use', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await cliFails(['hub', '--data', data.path, '--host', '127.0.0.1', '--http-port', String(port), '--tunnel-port', '0']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`HTTP port ${port} on 127.0.0.1 is already in use; choose another with --http-port`));
    } finally {
      blocker.close();
    }
  });

  it('starts in demo mode with a device online and a banner whose curl line works as printed', async () => {
    const demoData = tempDir();
    const hub = new Proc(spawn(process.execPath, [CLI, 'hub', '--demo', '--data', demoData.path, '--host', '127.0.0.1', '--http-port', '0', '--tunnel-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] }), 'demo');
    try {
      const line = await hub.waitFor((l) => l.trim().startsWith("curl -H 'Authorization: Bearer"), 20_000, 'curl line');
      const m = /curl -H 'Authorization: Bearer (\S+)' (\S+)/.exec(line.trim())!;
      const { stdout } = await curl(['-H', `Authorization: Bearer ${m[1]!}`, m[2]!]);
      const body = JSON.parse(stdout) as { celsius: number; setpoint: number };
      assert.equal(typeof body.celsius, 'number');
      assert.ok(hub.lines.some((l) => l.includes('Demo login')));
    } finally {
      await hub.stop();
      demoData.remove();
    }
  });
});
