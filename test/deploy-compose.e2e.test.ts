/**
 * deploy/compose/compose.yaml, deployed as its header says: the image built from deploy/Dockerfile,
 * `up -d --build`, the admin commands through `exec front1`, clients and agents knowing only the
 * balancer's ports. Its base images are the official ones where this machine has or can pull them,
 * else stand-ins from Debian packages (test/compose-stand-ins/build-images.sh): the images, services,
 * environment, health checks, HAProxy config and Dockerfile run as shipped. Only the balancer's host
 * address and ports are set (LB_* in the env file), since 1883 is taken here.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { freePort } from './support/services.js';
import { curlGet, login, Proc, startAgent, startDevice, tempDir } from './support/procs.js';
import { until } from './support/until.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const COMPOSE_FILE = join(ROOT, 'deploy/compose/compose.yaml');
const PROJECT = `cloudrest-e2e-${process.pid}`;
const EMAIL = 'you@example.com';
const PASSWORD = 'a long passphrase';
/** Building the images on a fresh machine (Debian bootstrap, apt, npm ci, a native module) takes minutes. */
const BUILD_TIMEOUT_MS = 15 * 60_000;

/** `docker compose` (v2) where it exists, else Debian 12's `docker-compose` (1.29). */
async function composeCommand(): Promise<string[]> {
  try {
    await run('docker', ['compose', 'version']);
    return ['docker', 'compose'];
  } catch {
    return ['docker-compose'];
  }
}

/** A Docker daemon: the running one, else one started here (as root, the way the test services are). */
async function dockerDaemon(): Promise<Proc | undefined> {
  const up = async () => run('docker', ['info'], { timeout: 10_000 }).then(() => true, () => false);
  if (await up()) return undefined;
  if (process.getuid?.() !== 0) throw new Error('this test needs a Docker daemon it can use: start one (sudo systemctl start docker) and join the docker group, or run npm test as root');
  const daemon = new Proc(spawn('dockerd', [], { stdio: ['ignore', 'pipe', 'pipe'] }), 'dockerd');
  await until(async () => ((await up()) ? true : undefined), 60_000, 'dockerd answering').catch((err: unknown) => {
    throw new Error(`${String(err)}; dockerd said:\n${daemon.lines.slice(-20).join('\n')}`);
  });
  return daemon;
}

describe('the shipped compose deployment: two fronts, two edges, PostgreSQL, Redis and HAProxy', { timeout: BUILD_TIMEOUT_MS + 5 * 60_000 }, () => {
  const dir = tempDir();
  const procs: Proc[] = [];
  let daemon: Proc | undefined;
  let compose: (args: string[], timeoutMs?: number) => Promise<string>;
  let lb: { http: number; tunnel: number; mqtt: number };
  let device: { id: string; secret: string };
  let token: string;

  const get = (query: string) => curlGet(`http://127.0.0.1:${lb.http}/v1/devices/${device.id}/api/temperature${query}`, token);

  before(async () => {
    daemon = await dockerDaemon();
    const images = await run(join(ROOT, 'test/compose-stand-ins/build-images.sh'), [], { timeout: BUILD_TIMEOUT_MS });
    for (const line of images.stdout.trim().split('\n')) process.stderr.write(`images: ${line}\n`);
    lb = { http: await freePort(), tunnel: await freePort(), mqtt: await freePort() };
    const envFile = join(dir.path, 'compose.env');
    writeFileSync(envFile, [
      `CLOUDREST_CLUSTER_SECRET=${'e2e-compose-secret-'.padEnd(64, '0')}`,
      `CLOUDREST_PUBLIC_URL=http://127.0.0.1:${lb.http}`,
      'LB_ADDRESS=127.0.0.1', `LB_HTTP_PORT=${lb.http}`, `LB_TUNNEL_PORT=${lb.tunnel}`, `LB_MQTT_PORT=${lb.mqtt}`, '',
    ].join('\n'));
    const base = await composeCommand();
    compose = async (args, timeoutMs = 120_000) => (await run(base[0]!, [...base.slice(1), '-p', PROJECT, '-f', COMPOSE_FILE, '--env-file', envFile, ...args], { cwd: ROOT, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 })).stdout;
    await compose(['up', '-d', '--build'], BUILD_TIMEOUT_MS);
    await until(async () => ((await fetch(`http://127.0.0.1:${lb.http}/readyz`).catch(() => undefined))?.ok ? true : undefined), 90_000, 'a front answering through the balancer')
      .catch(async (err: unknown) => {
        throw new Error(`${String(err)}; the services said:\n${await compose(['logs', '--tail', '30']).catch(() => '')}`);
      });
  }, { timeout: BUILD_TIMEOUT_MS + 2 * 60_000 });
  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await compose?.(['down', '-v', '--remove-orphans']).catch(() => undefined);
    await daemon?.stop();
    dir.remove();
  });

  it('becomes healthy: every hub passes the compose health check (/readyz)', async () => {
    const ids = (await compose(['ps', '-q', 'front1', 'front2', 'edge1', 'edge2'])).trim().split('\n');
    assert.equal(ids.length, 4);
    await until(async () => {
      const { stdout } = await run('docker', ['inspect', '--format', '{{.State.Health.Status}}', ...ids]);
      return stdout.trim().split('\n').every((s) => s === 'healthy') ? true : undefined;
    }, 60_000, 'four healthy hubs');
  });

  it('takes a user and a device from the admin commands of its header, and relays a logged-in client to an agent on the tunnel port', { timeout: 60_000 }, async () => {
    assert.match(await compose(['exec', '-T', 'front1', 'node', 'bin/cloudrest.js', 'users', 'add', '--email', EMAIL, '--password', PASSWORD]), /added/);
    device = JSON.parse(await compose(['exec', '-T', 'front1', 'node', 'bin/cloudrest.js', 'devices', 'add', '--name', 'lamp', '--email', EMAIL, '--json'])) as { id: string; secret: string };
    const rest = await startDevice(EMAIL);
    procs.push(rest);
    procs.push(await startAgent({ hub: `tcp://127.0.0.1:${lb.tunnel}`, deviceId: device.id, secret: device.secret, api: rest.url }));
    token = await login(`http://127.0.0.1:${lb.http}`, EMAIL, PASSWORD);
    for (let i = 0; i < 4; i++) {
      const r = await get(`?n=${i}`);
      assert.equal(r.status, 200, `relayed through the balancer: ${r.body}`);
    }
  });

  it('carries MQTT from a device on its MQTT port to a user (mosquitto_pub and mosquitto_sub)', { timeout: 30_000 }, async () => {
    const topic = `devices/${device.id}/sensors`;
    const sub = new Proc(spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(lb.mqtt), '-V', 'mqttv5', '-i', 'compose-user', '-u', EMAIL, '-P', token, '-t', topic, '-q', '1', '-C', '1', '-W', '20'], { stdio: ['ignore', 'pipe', 'pipe'] }), 'mosquitto_sub');
    procs.push(sub);
    const pub = () => run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(lb.mqtt), '-V', 'mqttv5', '-i', 'compose-device', '-u', device.id, '-P', device.secret, '-t', topic, '-q', '1', '-m', 't=21.5']);
    // The subscription is in place once a message gets through: publish until one does.
    await until(async () => {
      await pub();
      return sub.lines.length > 0 ? true : undefined;
    }, 15_000, 'the device\'s message reaching the user');
    assert.equal(sub.lines[0], 't=21.5');
  });

  it('keeps the device answering when the edge holding its tunnel is killed (docker kill)', { timeout: 60_000 }, async (t) => {
    const entry = (await compose(['exec', '-T', 'redis', 'redis-cli', 'get', `cloudrest:device:${device.id}`])).trim();
    const holder = entry.split(' ')[0];
    assert.ok(holder === 'edge1' || holder === 'edge2', `presence names an edge: ${entry}`);
    await compose(['kill', '-s', 'SIGKILL', holder]);
    const killedAt = Date.now();
    await until(async () => ((await get('?after=kill')).status === 200 ? true : undefined), 10_000, 'the device answering through the other edge');
    const tookMs = Date.now() - killedAt;
    const now = (await compose(['exec', '-T', 'redis', 'redis-cli', 'get', `cloudrest:device:${device.id}`])).trim();
    assert.equal(now.split(' ')[0], holder === 'edge1' ? 'edge2' : 'edge1', 'the tunnel is on the other edge');
    t.diagnostic(`the device answered again ${tookMs} ms after its edge was killed`);
    assert.ok(tookMs < 5000, `within 5 s (${tookMs} ms)`);
  });

  it('runs the embedded default from the same image: the SQLite store (a native module) works in it', { timeout: 60_000 }, async () => {
    const { stdout } = await run('docker', ['run', '--rm', '--tmpfs', '/data:uid=1000', 'cloudrest', 'users', 'add', '--email', 'solo@example.com', '--password', PASSWORD], { timeout: 60_000 });
    assert.match(stdout, /^user solo@example.com added \(u_/);
  });
});

