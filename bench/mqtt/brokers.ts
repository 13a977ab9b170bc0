// The brokers under test, each its own process on its own port, all anonymous on 127.0.0.1:
// - hub: the real `bin/cloudrest.js hub` (hub-b: the CLI entry BENCH_HUB_B names, e.g. a copy of an
//   earlier dist/ under .bench-tmp/, for A/B runs), MQTT on a free port, an ACL file granting anonymous clients
//   `bench/#` (the hub's defaults give anonymous clients nothing), log level warn;
// - mosquitto: /usr/sbin/mosquitto with a config file of our own on its own port (the system's
//   Mosquitto on 1883 is never touched), no persistence, the hub's inflight and queue limits;
// - aedes: aedes-broker.ts (in-memory aedes-persistence);
// - floor: floor-server.ts, a bare Node net server (idle connections only);
// - floor-cluster: two floor-server.ts relays in series through Redis (latency runs beside hub-cluster).
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, Proc } from '../../test/support/procs.js';

const ROOT = resolve(import.meta.dirname, '../..');
export const MOSQUITTO = '/usr/sbin/mosquitto';
const START_LIMIT_MS = 30_000;

/** 'hub-b' is a second hub from another build (BENCH_HUB_B), for A/B runs of a change. */
export type BrokerName = 'hub' | 'hub-b' | 'hub-cluster' | 'mosquitto' | 'aedes' | 'floor' | 'floor-cluster';

export interface RunningBroker {
  name: BrokerName;
  port: number;
  proc: Proc;
  pid: number;
  /** A cluster: the second node, where the subscribers connect (publishers connect to `port`). */
  peer?: { port: number; pid: number; proc: Proc };
}

/** The hub's limits, given to Mosquitto too, so both hold the same window and queue per client. */
export const MAX_INFLIGHT = 100;
export const MAX_QUEUED = 1000;

/** A port free right now on 127.0.0.1 (for brokers that must be told their port). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Waits, bounded, until `port` accepts TCP connections, or the process exits. */
async function waitForPort(p: Proc, port: number): Promise<void> {
  const deadline = Date.now() + START_LIMIT_MS;
  while (Date.now() < deadline) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${p.name} exited at start:\n${p.lines.slice(-20).join('\n')}`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ port, host: '127.0.0.1' }, () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`${p.name}: port ${port} not open within ${START_LIMIT_MS} ms:\n${p.lines.slice(-20).join('\n')}`);
}

function node(args: string[], name: string, env: NodeJS.ProcessEnv = process.env): Proc {
  return new Proc(spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] }), name);
}

/**
 * Two hub nodes of one cluster (`--redis` on `redisUrl` under `keyPrefix`, each its own SQLite
 * `--data`): publishers go to the first, subscribers to the second, so every message crosses nodes.
 */
export async function startHubCluster(dir: string, redisUrl: string, keyPrefix: string, nodeFlags: string[] = []): Promise<RunningBroker> {
  const acl = join(dir, 'bench.acl');
  writeFileSync(acl, 'allow all anonymous bench/#\n');
  const one = async (id: string): Promise<{ port: number; proc: Proc }> => {
    const port = await freePort();
    const args = [...nodeFlags, CLI, 'hub', '--data', join(dir, `cluster-${id}-${port}`), '--host', '127.0.0.1', '--http-port', '0', '--tunnel-port', '0', '--internal-port', '0',
      '--mqtt-port', String(port), '--mqtt-allow-anonymous', '--acl', acl, '--log-level', 'warn',
      '--redis', redisUrl, '--redis-key-prefix', keyPrefix, '--node-id', id, '--cluster-secret', 'bench-cluster-secret-0123'];
    const proc = node(args, `hub-${id}`, { ...process.env, CLOUDREST_MQTT_MAX_CONNECTIONS_PER_ADDRESS: '0' });
    await waitForPort(proc, port);
    return { port, proc };
  };
  return pair('hub-cluster', await one('a'), await one('b'));
}

/** Two processes as one broker: publishers connect to `a`, subscribers to `b` (the peer). */
function pair(name: BrokerName, a: { port: number; proc: Proc }, b: { port: number; proc: Proc }): RunningBroker {
  return { name, port: a.port, proc: a.proc, pid: a.proc.child.pid!, peer: { port: b.port, pid: b.proc.child.pid!, proc: b.proc } };
}

/** Starts a bench script that prints {"port":N} once it listens. */
async function script(path: string, name: string, nodeFlags: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<{ port: number; proc: Proc }> {
  const proc = node([...nodeFlags, '--import', 'tsx', join(ROOT, path)], name, env);
  const line = await proc.waitFor((l) => l.startsWith('{"port"'), START_LIMIT_MS, 'port');
  return { port: (JSON.parse(line) as { port: number }).port, proc };
}

/** Two bare relays through Redis (floor-server.ts with FLOOR_REDIS): publishers to `a`, subscribers to `b`. */
export async function startFloorCluster(redisUrl: string, keyPrefix: string): Promise<RunningBroker> {
  const one = (nodeName: 'a' | 'b') => script('bench/mqtt/floor-server.ts', `floor-${nodeName}`, [], { ...process.env, FLOOR_REDIS: redisUrl, FLOOR_CHANNEL: `${keyPrefix}floor:`, FLOOR_NODE: nodeName });
  return pair('floor-cluster', await one('a'), await one('b'));
}

/** Starts one broker; `dir` is a scratch folder (config, database); `nodeFlags` go to Node brokers. */
export async function startBroker(name: BrokerName, dir: string, nodeFlags: string[] = []): Promise<RunningBroker> {
  if (name === 'hub' || name === 'hub-b') {
    const cli = name === 'hub' ? CLI : resolve(process.env.BENCH_HUB_B ?? '');
    const port = await freePort();
    const acl = join(dir, 'bench.acl');
    writeFileSync(acl, 'allow all anonymous bench/#\n');
    const args = [...nodeFlags, cli, 'hub', '--data', join(dir, `${name}-data-${port}`), '--host', '127.0.0.1', '--http-port', '0', '--tunnel-port', '0',
      '--mqtt-port', String(port), '--mqtt-allow-anonymous', '--acl', acl, '--log-level', 'warn'];
    // Every generator connects from 127.0.0.1: no per-address cap (a variable, which older builds ignore, not a flag they would refuse).
    const proc = node(args, name, { ...process.env, CLOUDREST_MQTT_MAX_CONNECTIONS_PER_ADDRESS: '0' });
    await waitForPort(proc, port);
    return { name, port, proc, pid: proc.child.pid! };
  }
  if (name === 'mosquitto') {
    const port = await freePort();
    const conf = join(dir, `mosquitto-${port}.conf`);
    writeFileSync(conf, [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'max_connections -1',
      `max_inflight_messages ${MAX_INFLIGHT}`,
      `max_queued_messages ${MAX_QUEUED}`,
      `set_tcp_nodelay ${process.env.BENCH_MOSQUITTO_NODELAY ?? 'true'}`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      '',
    ].join('\n'), { mode: 0o644 });
    const proc = new Proc(spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] }), 'mosquitto');
    await waitForPort(proc, port);
    return { name, port, proc, pid: proc.child.pid! };
  }
  const { port, proc } = await script(name === 'aedes' ? 'bench/mqtt/aedes-broker.ts' : 'bench/mqtt/floor-server.ts', name, nodeFlags);
  return { name, port, proc, pid: proc.child.pid! };
}
