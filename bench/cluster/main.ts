// The scaled-out hub against the single node, every figure with its baseline in the same run (issue 13):
//
//   relay     a 1 KB JSON GET through front → edge (PostgreSQL + Redis) against the single-node hub on
//             SQLite: req/s and CPU µs per request of the hub processes (target: the two-node path costs
//             at most 1.5x the single node's CPU per request); also the floor of any second hop: a single
//             node whose agent reaches it through a bare TCP relay process (tcp-relay.ts), hub + relay CPU
//   redis     Redis commands per idle device per minute: the cluster's Redis with BENCH_IDLE_DEVICES
//             idle agents on the edge against the same Redis with none (target: near zero; the
//             heartbeat is per node)
//   failover  kill -9 of the edge holding a device whose agent lists two edges, BENCH_KILLS times: time
//             until the device answers through the front again (target: < 5 s every time)
//   agents    BENCH_AGENTS idle agents over two edges against as many on the single-node hub: RSS per
//             tunnel and idle CPU
//
//   npm run bench:cluster
//   BENCH_CASES=relay,redis,failover,agents (default: all)   BENCH_ROUNDS=3   BENCH_DURATION_S=10
//   BENCH_CONNECTIONS=50   BENCH_RATE=1000 (also both at this req/s; 0: flat out only)   BENCH_FLAT=0 (at BENCH_RATE only)   BENCH_IDLE_DEVICES=1000   BENCH_IDLE_S=60   BENCH_KILLS=10   BENCH_AGENTS=10000
//   BENCH_CLUSTER_ARGS="--cache-max-bytes 0"   extra flags for the front and edges (what-if runs)
//   BENCH_PROFILE=DIR                          every hub node under --cpu-prof, profiles in DIR/<node>
//   BENCH_NODE_FLAGS='--trace-gc'              more Node flags for every hub node (with CLOUDREST_TEST_VERBOSE=1
//                                              what they print shows on stderr, prefixed with the node's name)
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { openStoreBackend } from '../../src/backends.js';
import { hashPassword, sha256Hex } from '../../src/core/secrets.js';
import { benchDevice } from '../agents/devices.js';
import { cpuSeconds, rssBytes, usageWindow } from '../support/procfs.js';
import { rerunWithOpenFiles } from '../support/fds.js';
import type { LoadResult } from '../relay/load.js';
import { AGENT_BUNDLE, CLI, login, Proc, startDevice, tempDir } from '../../test/support/procs.js';
import { freePort, privateRedis, testPostgres } from '../../test/support/services.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CASES = new Set((process.env.BENCH_CASES ?? 'relay,redis,failover,agents').split(','));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
/** Both paths also at this fixed rate: CPU per request compared at equal load (0 to skip). */
const RATE = Number(process.env.BENCH_RATE ?? 1000);
/** The relay case's loads: flat out (unless BENCH_FLAT=0), then at RATE. */
const LOADS = [...(process.env.BENCH_FLAT === '0' ? [] : [undefined]), ...(RATE > 0 ? [RATE] : [])];
const IDLE_DEVICES = Number(process.env.BENCH_IDLE_DEVICES ?? 1000);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 60);
const KILLS = Number(process.env.BENCH_KILLS ?? 10);
const AGENTS = Number(process.env.BENCH_AGENTS ?? 10_000);
const CPU_TARGET = 1.5;
const FAILOVER_TARGET_MS = 5000;
const EMAIL = 'bench@example.com';
const PASSWORD = 'bench password 1';
const SECRET = 'bench-cluster-secret-0123456789';
/** Every agent of the bench connects from 127.0.0.1: the per-address limit (1,000 by default) is lifted. */
const MANY_AGENTS = ['--max-tunnels-per-address', '0'];
const CLUSTER_ARGS = (process.env.BENCH_CLUSTER_ARGS ?? '').split(' ').filter(Boolean);
const PROFILE_DIR = process.env.BENCH_PROFILE;
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);

if (CASES.has('agents')) rerunWithOpenFiles(AGENTS * 2 + 4096);

const procs: Proc[] = [];
function node(args: string[], name: string): Proc {
  const p = new Proc(spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), name);
  procs.push(p);
  return p;
}

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? NaN;

interface HubNode {
  proc: Proc;
  name: string;
  httpPort: number;
  tunnelPort: number;
  args: string[];
}

/** Starts `cloudrest hub` and waits until it listens; `ports` pins the ports (a node restarted in place). */
async function startNode(name: string, args: string[], ports?: { http: number; tunnel: number }): Promise<HubNode> {
  const profile = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${join(resolve(PROFILE_DIR), name)}`] : [];
  const all = [...profile, ...NODE_FLAGS, CLI, 'hub', '--host', '127.0.0.1', '--http-port', String(ports?.http ?? 0), '--tunnel-port', String(ports?.tunnel ?? 0), '--no-mqtt', '--log-level', 'info', ...MANY_AGENTS, ...args];
  const proc = node(all, name);
  const l = await proc.waitForLog('hub listening', () => true, 30_000);
  return { proc, name, httpPort: l.httpPort as number, tunnelPort: l.tunnelPort as number, args };
}

/** The devices of this run in one store: the relay's device and the idle ones (benchDevice(i)). */
async function registerDevices(location: { data: string; store: string }, idle: number): Promise<{ id: string; secret: string }> {
  const backend = await openStoreBackend(location);
  try {
    const { store } = backend;
    await store.createUser({ id: 'u_bench', email: EMAIL, passwordHash: await hashPassword(PASSWORD) });
    const relayDevice = { id: 'd_benchrelay', secret: 'bench-relay-secret-not-for-production' };
    await store.createDevice({ id: relayDevice.id, name: 'Bench device', email: EMAIL, secretHash: sha256Hex(relayDevice.secret) });
    const batch = [];
    for (let i = 0; i < idle; i++) {
      const { id, secret } = benchDevice(i);
      batch.push({ id, name: `Bench device ${i}`, email: null, secretHash: sha256Hex(secret) });
      if (batch.length === 1000 || i === idle - 1) await store.createDevices(batch.splice(0));
    }
    return relayDevice;
  } finally {
    await backend.close();
  }
}

/** Runs the load generator against `url` and reports CPU of `pids` over the measured part. */
async function load(url: string, headers: Record<string, string>, pids: Record<string, number>, rate?: number, redis?: Redis): Promise<{ load: LoadResult; cpuPct: Record<string, number>; io: string }> {
  const spec = { url, connections: CONNECTIONS, warmupS: WARMUP_S, durationS: DURATION_S, headers, rate };
  const gen = node(['--import', 'tsx', join(ROOT, 'bench/relay/load.ts'), JSON.stringify(spec)], 'load');
  const limit = (WARMUP_S + DURATION_S) * 1000 + 30_000;
  try {
    await gen.waitFor((l) => l.startsWith('{"phase":"measure"'), limit, 'measured run');
    const window = usageWindow(pids);
    const commands0 = redis ? await redisCommands(redis) : 0;
    const line = await gen.waitFor((l) => l.startsWith('{"result"'), limit, 'result');
    const usage = window.stop();
    const commands = redis ? (await redisCommands(redis)) - commands0 : 0;
    const cpuPct = Object.fromEntries(Object.entries(usage.processes).map(([k, u]) => [k, u.cpuPct]));
    const result = (JSON.parse(line) as { result: LoadResult }).result;
    // Syscalls that read and write, and sleeps (context switches), per request: what a hop costs the kernel.
    const n = result.requestsPerS * DURATION_S;
    let io = Object.entries(usage.processes).map(([k, u]) => `${k} ${fmt(u.reads / n, 1)}/${fmt(u.writes / n, 1)}/${fmt(u.sleeps / n, 1)}`).join(', ');
    if (redis) io += `; Redis commands ${fmt(commands / n, 2)}`;
    return { load: result, cpuPct, io };
  } finally {
    await gen.stop('SIGKILL');
  }
}

const usPerReq = (cpuPct: number, reqPerS: number): number => ((cpuPct / 100) * 1e6) / reqPerS;
/** "front 80.1 + edge 59.3": each process's share of a two-process path's CPU per request. */
const splitOf = (r: { load: LoadResult; cpuPct: Record<string, number> }, a: string, b: string): string =>
  `${a} ${fmt(usPerReq(r.cpuPct[a] ?? NaN, r.load.requestsPerS), 1)} + ${b} ${fmt(usPerReq(r.cpuPct[b] ?? NaN, r.load.requestsPerS), 1)}`;

/** GETs `url` until it answers 200 (or `limitMs` passes); the ms it took. */
async function untilAnswered(url: string, headers: Record<string, string>, limitMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < limitMs) {
    try {
      const r = await fetch(url, { headers, signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.status === 200) return performance.now() - t0;
    } catch {
      // the front may be mid-way: ask again
    }
    await sleep(20);
  }
  return Infinity;
}

/** Commands the Redis server has processed so far. */
async function redisCommands(redis: Redis): Promise<number> {
  const info = await redis.info('stats');
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? NaN);
}

/** Connects `count` idle agents (bench/agents/swarm.ts) to `url` from index `from`; resolves when all are up. */
async function swarm(url: string, from: number, count: number, name: string): Promise<Proc> {
  const spec = { url, mode: 'tunnel', from, to: from + count, pingIntervalMs: 20_000, timeoutMs: 240_000 };
  const p = node(['--import', 'tsx', join(ROOT, 'bench/agents/swarm.ts'), JSON.stringify(spec)], name);
  await p.waitFor((l) => l.startsWith('{"ready"'), 250_000, 'all connections');
  const ready = JSON.parse(p.lines.findLast((l) => l.startsWith('{"ready"'))!) as { up: number; failed: number };
  if (ready.failed > 0) throw new Error(`${name}: ${ready.failed} of ${count} agents failed to connect`);
  return p;
}

const out: string[] = [];
const say = (s: string) => {
  out.push(s);
  process.stderr.write(`${s}\n`);
};
const single = tempDir('cloudrest-bench-single-');
const floorData = tempDir('cloudrest-bench-floor-');
const dirs = [single, floorData, ...['front1', 'edge1', 'edge2'].map((n) => tempDir(`cloudrest-bench-${n}-`))];
const db = await testPostgres();
const redisServer = await privateRedis();
const stopAll = async (): Promise<void> => {
  for (const p of procs.reverse()) await p.stop('SIGTERM', 5000).catch(() => undefined);
  await redisServer.stop();
  await db.drop();
  for (const d of dirs) d.remove();
};
process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));

try {
  const idle = Math.max(CASES.has('redis') ? IDLE_DEVICES : 0, CASES.has('agents') ? AGENTS : 0);
  const relayDevice = await registerDevices({ data: single.path, store: 'sqlite' }, CASES.has('agents') ? AGENTS : 0);
  await registerDevices({ data: dirs[2]!.path, store: db.url }, idle);
  const device = await startDevice(EMAIL);
  procs.push(device);

  const cluster = ['--store', db.url, '--redis', redisServer.url, '--cluster-secret', SECRET, '--no-admin-socket', ...CLUSTER_ARGS];
  const hub = await startNode('hub', ['--data', single.path]);
  const front = await startNode('front1', ['--data', dirs[2]!.path, '--role', 'front', '--node-id', 'front1', ...cluster]);
  const edgePorts = await Promise.all([0, 1].map(async () => ({ http: await freePort(), tunnel: await freePort(), internal: await freePort() })));
  const edgeArgs = (i: number) => ['--data', dirs[3 + i]!.path, '--role', 'edge', '--node-id', `edge${i + 1}`, '--internal-port', String(edgePorts[i]!.internal), ...cluster];
  const edges = [await startNode('edge1', edgeArgs(0), edgePorts[0])];

  const agentOf = (hubs: string[], name: string) => node([AGENT_BUNDLE, ...hubs.flatMap((h) => ['--hub', h]), '--device-id', relayDevice.id, '--secret', relayDevice.secret, '--api', device.url, '--backoff-min-ms', '50', '--backoff-max-ms', '500'], name);
  const singleAgent = agentOf([`tcp://127.0.0.1:${hub.tunnelPort}`], 'agent-single');
  await singleAgent.waitForLog('connected');
  const singleToken = await login(`http://127.0.0.1:${hub.httpPort}`, EMAIL, PASSWORD);
  const frontToken = await login(`http://127.0.0.1:${front.httpPort}`, EMAIL, PASSWORD);
  const singleUrl = `http://127.0.0.1:${hub.httpPort}/v1/devices/${relayDevice.id}/api/json1k`;
  const frontUrl = `http://127.0.0.1:${front.httpPort}/v1/devices/${relayDevice.id}/api/json1k`;
  const singleAuth = { authorization: `Bearer ${singleToken}` };
  const frontAuth = { authorization: `Bearer ${frontToken}` };

  if (CASES.has('relay')) {
    const redisClient = new Redis(redisServer.url);
    const clusterAgent = agentOf([`tcp://127.0.0.1:${edges[0]!.tunnelPort}`], 'agent-cluster');
    await clusterAgent.waitForLog('connected');
    // The floor: a single node of its own whose agent comes through a bare TCP relay.
    await registerDevices({ data: floorData.path, store: 'sqlite' }, 0);
    const floorHub = await startNode('hub-floor', ['--data', floorData.path]);
    const relay = node(['--import', 'tsx', join(ROOT, 'bench/cluster/tcp-relay.ts'), String(floorHub.tunnelPort)], 'tcp-relay');
    const relayPort = (JSON.parse(await relay.waitFor((l) => l.startsWith('{"port"'))) as { port: number }).port;
    const floorAgent = agentOf([`tcp://127.0.0.1:${relayPort}`], 'agent-floor');
    await floorAgent.waitForLog('connected');
    const floorUrl = `http://127.0.0.1:${floorHub.httpPort}/v1/devices/${relayDevice.id}/api/json1k`;
    const floorAuth = { authorization: `Bearer ${await login(`http://127.0.0.1:${floorHub.httpPort}`, EMAIL, PASSWORD)}` };
    if ((await untilAnswered(frontUrl, frontAuth, 10_000)) === Infinity) throw new Error('the device does not answer through the front');
    // A cache hit would flatter either path: every answer must come from the device.
    for (const [url, headers] of [[singleUrl, singleAuth], [frontUrl, frontAuth], [floorUrl, floorAuth]] as const) {
      const r = await fetch(url, { headers });
      await r.arrayBuffer();
      const xCache = r.headers.get('x-cache');
      if (xCache !== 'MISS' && xCache !== null) throw new Error(`expected X-Cache: MISS (or none, cache off) from ${url}, got ${xCache}`);
    }
    const rows: Array<{ round: number; what: string; rate: number | undefined; reqPerS: number; p99: number; us: number; split: string; io: string }> = [];
    const SINGLE = 'single node (SQLite)';
    const CLUSTER = 'front → edge (PostgreSQL + Redis)';
    const FLOOR = 'single node + bare TCP relay (floor of a second hop)';
    for (let round = 1; round <= ROUNDS; round++) {
      for (const rate of LOADS) {
        const s = await load(singleUrl, singleAuth, { hub: hub.proc.child.pid! }, rate);
        rows.push({ round, what: SINGLE, rate, reqPerS: s.load.requestsPerS, p99: s.load.p99Ms, us: usPerReq(s.cpuPct.hub ?? NaN, s.load.requestsPerS), split: '', io: s.io });
        const c = await load(frontUrl, frontAuth, { front: front.proc.child.pid!, edge: edges[0]!.proc.child.pid! }, rate, redisClient);
        rows.push({ round, what: CLUSTER, rate, reqPerS: c.load.requestsPerS, p99: c.load.p99Ms, us: usPerReq((c.cpuPct.front ?? NaN) + (c.cpuPct.edge ?? NaN), c.load.requestsPerS), split: splitOf(c, 'front', 'edge'), io: c.io });
        const f = await load(floorUrl, floorAuth, { hub: floorHub.proc.child.pid!, relay: relay.child.pid! }, rate);
        rows.push({ round, what: FLOOR, rate, reqPerS: f.load.requestsPerS, p99: f.load.p99Ms, us: usPerReq((f.cpuPct.hub ?? NaN) + (f.cpuPct.relay ?? NaN), f.load.requestsPerS), split: splitOf(f, 'hub', 'relay'), io: f.io });
      }
    }
    say(`\n### Relay through front → edge against one node (${CONNECTIONS} connections, ${DURATION_S} s per case, ${ROUNDS} rounds alternating; flat out, then both at ${RATE} req/s)\n`);
    say('| round | path | load | req/s | p99 ms | hub CPU µs / request (front + edge for the cluster, hub + relay for the floor) | of which | reads / writes / sleeps per request |');
    say('|---:|---|---|---:|---:|---:|---|---|');
    for (const r of rows) say(`| ${r.round} | ${r.what} | ${r.rate === undefined ? 'flat out' : `${r.rate} req/s`} | ${fmt(r.reqPerS)} | ${fmt(r.p99, 2)} | ${fmt(r.us, 1)} | ${r.split} | ${r.io} |`);
    say('');
    for (const rate of LOADS) {
      const us = (what: string) => median(rows.filter((r) => r.what === what && r.rate === rate).map((r) => r.us));
      const ratio = us(CLUSTER) / us(SINGLE);
      say(`- ${rate === undefined ? 'flat out' : `at ${rate} req/s`}: CPU per request, median: cluster ${fmt(us(CLUSTER), 1)} µs / single ${fmt(us(SINGLE), 1)} µs = ${fmt(ratio, 2)}x (target <= ${CPU_TARGET}x: ${ratio <= CPU_TARGET ? 'MET' : 'MISSED'});`
        + ` a bare TCP relay in front of the single node (the floor of any second hop) ${fmt(us(FLOOR), 1)} µs = ${fmt(us(FLOOR) / us(SINGLE), 2)}x`);
    }
    await clusterAgent.stop();
    await floorAgent.stop();
    redisClient.disconnect();
  }

  if (CASES.has('redis')) {
    const redis = new Redis(redisServer.url);
    const window = async (): Promise<number> => {
      const c0 = await redisCommands(redis);
      await sleep(IDLE_S * 1000);
      // INFO itself is a command: take ours out.
      return (await redisCommands(redis)) - c0 - 1;
    };
    const none = await window();
    const agents = await swarm(`ws://127.0.0.1:${edges[0]!.httpPort}/v1/agent`, 0, IDLE_DEVICES, 'swarm-redis');
    await sleep(5000);
    const withDevices = await window();
    await agents.stop('SIGKILL');
    redis.disconnect();
    const perDeviceMin = ((withDevices - none) / IDLE_DEVICES) * (60 / IDLE_S);
    say(`\n### Redis commands while devices idle (${IDLE_S} s windows, front + edge)\n`);
    say(`- no devices: ${none} commands; ${IDLE_DEVICES} idle devices on the edge: ${withDevices} commands`);
    say(`- per idle device per minute: ${fmt(perDeviceMin, 3)} (target near zero: ${perDeviceMin < 0.01 ? 'MET' : 'MISSED'})`);
  }

  if (CASES.has('failover')) {
    edges.push(await startNode('edge2', edgeArgs(1), edgePorts[1]));
    const urls = edges.map((e) => `tcp://127.0.0.1:${e.tunnelPort}`);
    const agent = agentOf(urls, 'agent-failover');
    await agent.waitForLog('connected');
    const times: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      if ((await untilAnswered(frontUrl, frontAuth, 10_000)) === Infinity) throw new Error('the device does not answer before the kill');
      const holder = agent.logs('connected').at(-1)?.hub as string;
      const i = urls.indexOf(holder);
      const victim = edges[i]!;
      const t0 = performance.now();
      victim.proc.child.kill('SIGKILL');
      await victim.proc.exited;
      const answered = await untilAnswered(frontUrl, frontAuth, 30_000);
      times.push(answered === Infinity ? Infinity : performance.now() - t0);
      say(`  kill ${k + 1}: ${victim.name} killed, the device answered through the front after ${fmt(times.at(-1)!)} ms`);
      edges[i] = await startNode(victim.name, edgeArgs(i), edgePorts[i]);
    }
    const sorted = [...times].sort((a, b) => a - b);
    say(`\n### Failover after kill -9 of the edge holding the device (${KILLS} kills; the agent lists both edges)\n`);
    say(`- min ${fmt(sorted[0]!)} ms, median ${fmt(median(times))} ms, max ${fmt(sorted.at(-1)!)} ms (target max < ${FAILOVER_TARGET_MS} ms: ${sorted.at(-1)! < FAILOVER_TARGET_MS ? 'MET' : 'MISSED'})`);
    await agent.stop();
  }

  if (CASES.has('agents')) {
    if (edges.length < 2) edges.push(await startNode('edge2', edgeArgs(1), edgePorts[1]));
    const rows: string[] = [];
    const measureIdle = async (what: string, targets: Array<{ node: HubNode; from: number; count: number }>) => {
      const before = targets.map((t) => rssBytes(t.node.proc.child.pid!));
      const gens = [];
      for (const t of targets) gens.push(await swarm(`ws://127.0.0.1:${t.node.httpPort}/v1/agent`, t.from, t.count, `swarm-${t.node.name}`));
      await sleep(5000);
      const cpu0 = targets.map((t) => cpuSeconds(t.node.proc.child.pid!).total);
      const w0 = performance.now();
      await sleep(10_000);
      const wallS = (performance.now() - w0) / 1000;
      targets.forEach((t, j) => {
        const kb = (rssBytes(t.node.proc.child.pid!) - before[j]!) / 1024 / t.count;
        const cpu = ((cpuSeconds(t.node.proc.child.pid!).total - cpu0[j]!) / wallS) * 100;
        rows.push(`| ${what} | ${t.node.name} | ${t.count} | ${fmt(kb, 1)} | ${fmt(cpu, 1)} |`);
      });
      for (const g of gens) await g.stop('SIGKILL');
    };
    await measureIdle('single node', [{ node: hub, from: 0, count: AGENTS }]);
    await measureIdle('two edges', [{ node: edges[0]!, from: 0, count: AGENTS / 2 }, { node: edges[1]!, from: AGENTS / 2, count: AGENTS / 2 }]);
    say(`\n### ${AGENTS} idle agents (WebSocket tunnels): single node against two edges\n`);
    say('| setup | node | tunnels | RSS KB / tunnel | idle CPU % of a core |');
    say('|---|---|---:|---:|---:|');
    for (const r of rows) say(r);
  }
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  await stopAll();
}
