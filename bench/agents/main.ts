// Many idle agents on one hub: 10,000 WebSocket tunnels (ws://HOST:HTTP_PORT/v1/agent), each a real
// HELLO/WELCOME handshake with its own device credentials, then idle with PINGs at the hub's interval.
// Reports the hub's RSS per connection and its idle CPU, against a floor measured in the same run: the
// same number of bare websockets held by a minimal ws server (floor-server.ts).
//
//   node --import tsx bench/agents/main.ts
//   BENCH_AGENTS=10000  BENCH_GENERATORS=2  BENCH_SETTLE_S=5  BENCH_IDLE_S=10
//   BENCH_PING_MS=20000 (the hub's --tunnel-ping-interval-ms; 20000 is its default)
//
// Target: at most 20 KB of hub RSS per connected agent.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256Hex } from '../../src/core/secrets.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { CLI, Proc, tempDir } from '../../test/support/procs.js';
import { rerunWithOpenFiles } from '../support/fds.js';
import { cpuSeconds, rssBytes } from '../support/procfs.js';
import { benchDevice } from './devices.js';

const ROOT = resolve(import.meta.dirname, '../..');
const FD_LIMIT = 65_536;

// Each connection is a file descriptor in the server and in a generator.
rerunWithOpenFiles(FD_LIMIT);

/** The soft limit on open files of this process (inherited by everything it starts). */
function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m?.[1] === 'unlimited' ? Infinity : Number(m?.[1] ?? 1024);
}

const AGENTS = Number(process.env.BENCH_AGENTS ?? 10_000);
const GENERATORS = Number(process.env.BENCH_GENERATORS ?? 2);
const SETTLE_S = Number(process.env.BENCH_SETTLE_S ?? 5);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 10);
const PING_MS = Number(process.env.BENCH_PING_MS ?? 20_000);
const TARGET_KB = 20;
const CONNECT_LIMIT_MS = 240_000;
if (openFilesLimit() < AGENTS + 1024) {
  process.stderr.write(`open files limit ${openFilesLimit()} is too low for ${AGENTS} connections (need ${AGENTS + 1024}); raise the hard limit or lower BENCH_AGENTS\n`);
  process.exit(2);
}

interface Result {
  server: string;
  connections: number;
  failed: number;
  dropped: number;
  connectS: number;
  rssBefore: number;
  rssAfter: number;
  idleCpuPct: number;
  generatorCpuPct: number;
  /** PING answers the generators received per second during the idle window. */
  pongsPerS: number;
}

const procs: Proc[] = [];
function node(args: string[], name: string): Proc {
  const p = new Proc(spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), name);
  procs.push(p);
  return p;
}

interface SwarmState {
  up: number;
  failed: number;
  dropped: number;
  pongs: number;
}
/** The latest state line of a generator (printed once a second). */
function last(p: Proc): SwarmState {
  const line = p.lines.findLast((l) => l.startsWith('{"up"') || l.startsWith('{"ready"'));
  return line ? (JSON.parse(line) as SwarmState) : { up: 0, failed: 0, dropped: 0, pongs: 0 };
}
const sum = (states: SwarmState[], k: keyof SwarmState): number => states.reduce((n, s) => n + s[k], 0);

/** Connects AGENTS websockets through GENERATORS processes, then measures the server at rest. */
async function measure(server: string, pid: number, url: string, mode: 'tunnel' | 'bare'): Promise<Result> {
  await sleep(SETTLE_S * 1000);
  const rssBefore = rssBytes(pid);
  const started = Date.now();
  const gens: Proc[] = [];
  const per = Math.ceil(AGENTS / GENERATORS);
  for (let g = 0; g < GENERATORS; g++) {
    const spec = { url, mode, from: g * per, to: Math.min(AGENTS, (g + 1) * per), pingIntervalMs: PING_MS, timeoutMs: CONNECT_LIMIT_MS };
    gens.push(node(['--import', 'tsx', join(ROOT, 'bench/agents/swarm.ts'), JSON.stringify(spec)], `swarm-${g}`));
  }
  const progress = setInterval(() => process.stderr.write(`  ${server}: ${sum(gens.map(last), 'up')}/${AGENTS} up\n`), 5000);
  try {
    await Promise.all(gens.map((g) => g.waitFor((l) => l.startsWith('{"ready"'), CONNECT_LIMIT_MS + 10_000, 'all connections')));
  } finally {
    clearInterval(progress);
  }
  const connectS = (Date.now() - started) / 1000;
  process.stderr.write(`  ${server}: connected in ${connectS.toFixed(1)} s; settling ${SETTLE_S} s, then ${IDLE_S} s idle\n`);
  await sleep(SETTLE_S * 1000);
  const rssAfter = rssBytes(pid);
  const cpu0 = cpuSeconds(pid).total;
  const gen0 = gens.reduce((s, g) => s + cpuSeconds(g.child.pid!).total, 0);
  const pongs0 = sum(gens.map(last), 'pongs');
  const t0 = Date.now();
  await sleep(IDLE_S * 1000);
  const wallS = (Date.now() - t0) / 1000;
  const pongsPerS = (sum(gens.map(last), 'pongs') - pongs0) / wallS;
  const idleCpuPct = ((cpuSeconds(pid).total - cpu0) / wallS) * 100;
  const generatorCpuPct = ((gens.reduce((s, g) => s + cpuSeconds(g.child.pid!).total, 0) - gen0) / wallS) * 100;
  const counts = gens.map(last);
  for (const g of gens) await g.stop('SIGKILL');
  return {
    server, rssBefore, rssAfter, idleCpuPct, generatorCpuPct, connectS, pongsPerS,
    connections: sum(counts, 'up'),
    failed: sum(counts, 'failed'),
    dropped: sum(counts, 'dropped'),
  };
}

async function registerDevices(dataDir: string): Promise<void> {
  const store = SqliteStore.open(join(dataDir, 'cloudrest.db'));
  try {
    await store.migrate();
    for (let i = 0; i < AGENTS; i++) {
      const { id, secret } = benchDevice(i);
      await store.createDevice({ id, name: `Bench device ${i}`, email: null, secretHash: sha256Hex(secret) });
    }
  } finally {
    await store.close();
  }
}

const mb = (b: number): string => (b / 1024 / 1024).toFixed(1);
const perConnKb = (r: Result): number => (r.rssAfter - r.rssBefore) / 1024 / Math.max(1, r.connections);

const data = tempDir('cloudrest-bench-agents-');
const stopAll = async (): Promise<void> => {
  for (const p of procs.reverse()) await p.stop('SIGTERM', 15_000).catch(() => undefined);
  data.remove();
};
process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));

try {
  const results: Result[] = [];

  process.stderr.write(`floor: ${AGENTS} bare websockets to a minimal ws server\n`);
  const floor = node(['--import', 'tsx', join(ROOT, 'bench/agents/floor-server.ts')], 'floor');
  const floorPort = (JSON.parse(await floor.waitFor((l) => l.startsWith('{"port"'))) as { port: number }).port;
  results.push(await measure('minimal ws server (floor)', floor.child.pid!, `ws://127.0.0.1:${floorPort}/v1/agent`, 'bare'));
  await floor.stop();

  const t0 = Date.now();
  await registerDevices(data.path);
  process.stderr.write(`hub: ${AGENTS} devices written to SQLite in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  // Every agent comes from 127.0.0.1: no per-address tunnel limit (default 1,000) here.
  const hub = node([CLI, 'hub', '--data', data.path, '--host', '127.0.0.1', '--http-port', '0', '--tunnel-port', '0', '--log-level', 'info', '--tunnel-ping-interval-ms', String(PING_MS), '--max-tunnels-per-address', '0'], 'hub');
  const listening = await hub.waitForLog('hub listening');
  results.push(await measure('cloudrest hub', hub.child.pid!, `ws://127.0.0.1:${listening.httpPort as number}/v1/agent`, 'tunnel'));
  const welcomed = hub.logs('device connected').length;

  const rows = results.map((r) => `| ${r.server} | ${r.connections} | ${r.failed} / ${r.dropped} | ${r.connectS.toFixed(1)} | ${mb(r.rssBefore)} | ${mb(r.rssAfter)} | ${perConnKb(r).toFixed(1)} | ${r.idleCpuPct.toFixed(1)} | ${r.pongsPerS.toFixed(0)} | ${r.generatorCpuPct.toFixed(1)} |`);
  process.stdout.write(`\n## Idle agents (node ${process.version}, ${AGENTS} websockets, PING every ${PING_MS} ms = ${Math.round(AGENTS / (PING_MS / 1000))}/s, ${IDLE_S} s idle window)\n\n`);
  process.stdout.write('| server | connections up | failed / dropped | connect s | RSS before MB | RSS after MB | RSS KB per connection | idle CPU % of a core | PONGs/s received | generators CPU % |\n');
  process.stdout.write(`|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n${rows.join('\n')}\n\n`);
  const [f, h] = [results[0]!, results[1]!];
  process.stdout.write(`- hub log: ${welcomed} 'device connected' lines\n`);
  process.stdout.write(`- the hub adds ${(perConnKb(h) - perConnKb(f)).toFixed(1)} KB per connection over the floor, and ${(h.idleCpuPct - f.idleCpuPct).toFixed(1)} % of a core idle CPU\n`);
  const ok = h.connections === AGENTS && h.dropped === 0 && perConnKb(h) <= TARGET_KB;
  process.stdout.write(`- target: <= ${TARGET_KB} KB hub RSS per connection with all ${AGENTS} up: ${ok ? 'MET' : 'MISSED'} (${perConnKb(h).toFixed(1)} KB)\n`);
} finally {
  await stopAll();
}
