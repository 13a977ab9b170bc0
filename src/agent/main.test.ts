import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { ErrorCode } from '../relay/protocol/frames.js';
import { DeviceApi, TestHub, tempDir, waitUntil } from './test-hub.test.js';

const BIN = resolve(import.meta.dirname, 'bin.ts');

interface Run {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  exit: Promise<number | null>;
}

/** Runs the agent as its own process, as on a device (through the bundle's entry point). */
function runAgent(args: string[]): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CLOUDREST_CONFIG: '' } });
  const stdout: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => stdout.push(l));
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, stdout, stderr, exit };
}

function logs(r: Run): Array<Record<string, unknown>> {
  return r.stdout.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('cloudrest agent (the command)', () => {
  let hub: TestHub;
  let api: DeviceApi;

  before(async () => {
    hub = await TestHub.start();
    api = await DeviceApi.start();
  });
  after(async () => {
    await hub.close();
    await api.close();
  });

  test('--help prints the usage and every option', async () => {
    const r = runAgent(['--help']);
    assert.equal(await r.exit, 0);
    const out = r.stdout.join('\n');
    assert.match(out, /Usage: cloudrest agent --hub URL --device-id ID --secret S --api http:\/\/127\.0\.0\.1:PORT/);
    for (const flag of ['--hub', '--notify-pipe', '--notify-port', '--backoff-max-ms', '--tls-ca']) assert.ok(out.includes(flag), flag);
  });

  test('a missing or wrong option exits with code 2 and says what is wrong', async () => {
    const missing = runAgent(['--device-id', 'd', '--secret', 's']);
    assert.equal(await missing.exit, 2);
    assert.match(missing.stderr.join('\n'), /missing required option --hub/);

    const scheme = runAgent(['--hub', 'http://hub:8080', '--device-id', 'd', '--secret', 's']);
    assert.equal(await scheme.exit, 2);
    assert.match(scheme.stderr.join('\n'), /unsupported scheme http:/);

    const unknown = runAgent(['--hub', 'tcp://hub', '--device-id', 'd', '--secret', 's', '--bogus']);
    assert.equal(await unknown.exit, 2);
    assert.match(unknown.stderr.join('\n'), /bogus/);
  });

  test('LAN options that cannot work exit with code 2 and say why, and each is also a CLOUDREST_* variable', async () => {
    const base = ['--hub', 'tcp://hub', '--device-id', 'd', '--secret', 's'];
    const loopback = runAgent([...base, '--api', 'http://127.0.0.1:80', '--discovery']);
    assert.equal(await loopback.exit, 2);
    assert.match(loopback.stderr.join('\n'), /--discovery needs --lan-port/);
    const halfTls = runAgent([...base, '--lan-port', '0', '--lan-tls-cert', '/nonexistent.pem']);
    assert.equal(await halfTls.exit, 2);
    assert.match(halfTls.stderr.join('\n'), /--lan-tls-cert and --lan-tls-key go together/);
    const credsWithoutSecret = runAgent([...base, '--also-hub', 'tcp://only-id@hub:7443']);
    assert.equal(await credsWithoutSecret.exit, 2);
    assert.match(credsWithoutSecret.stderr.join('\n'), /credentials in a hub URL are ID:SECRET@/);
    const twice = runAgent([...base, '--also-hub', 'tcp://hub']);
    assert.equal(await twice.exit, 2);
    assert.match(twice.stderr.join('\n'), /already in --hub or --also-hub/);
    const help = runAgent(['--help']);
    assert.equal(await help.exit, 0);
    for (const line of ['--lan-port N', 'CLOUDREST_LAN_PORT', '--discovery ', 'CLOUDREST_DISCOVERY_REPLY_PORT', '--also-hub VALUE', 'CLOUDREST_STATE_DIR']) assert.ok(help.stdout.join('\n').includes(line), line);
  });

  test('a notify port already in use stops the start with a clear error', async () => {
    const busy = createServer().listen(0, '127.0.0.1');
    await once(busy, 'listening');
    const port = (busy.address() as { port: number }).port;
    const r = runAgent(['--hub', hub.url, '--device-id', 'd', '--secret', 's', '--api', api.url, '--notify-port', String(port)]);
    assert.equal(await r.exit, 1);
    assert.match(r.stderr.join('\n'), /cannot start: .*EADDRINUSE/);
    busy.close();
  });

  test('the agent connects, serves requests, and on SIGTERM says GOAWAY, cleans up and exits 0', async () => {
    const dir = tempDir();
    const fifo = join(dir.path, 'n.fifo');
    const session = hub.nextSession(20_000);
    const r = runAgent(['--hub', hub.url, '--device-id', 'dev-cli', '--secret', 's', '--api', api.url, '--notify-pipe', fifo, '--notify-port', '0']);
    try {
      const s = await session;
      await waitUntil(() => logs(r).some((l) => l.msg === 'connected'), 10_000, 'connected log line');
      const connected = logs(r).find((l) => l.msg === 'connected')!;
      assert.equal(connected.level, 'info');
      assert.equal(typeof connected.time, 'number');
      assert.equal(connected.hub, hub.url);
      const port = logs(r).find((l) => l.msg === 'notify listening' && typeof l.port === 'number')!.port as number;
      const res = await fetch(`http://127.0.0.1:${port}/notify`, { method: 'POST', body: 'from the cli\n' });
      assert.equal(res.status, 202);
      await hub.waitForNotifications(1);
      assert.equal((await hub.request('GET', '/ping')).status, 200);

      const goaway = once(s, 'goaway');
      const started = Date.now();
      r.child.kill('SIGTERM');
      const [g] = (await goaway) as [{ code: number }];
      assert.equal(g.code, ErrorCode.NO_ERROR);
      assert.equal(await r.exit, 0);
      assert.ok(Date.now() - started < 3000, 'exited promptly: nothing kept the process alive');
      assert.equal(existsSync(fifo), false, 'FIFO removed');
    } finally {
      r.child.kill('SIGKILL');
      dir.remove();
    }
  });
});
