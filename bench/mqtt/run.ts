// Running one scenario against one broker: the generator processes (load.ts), the warm-up, the
// measured window with per-process CPU from /proc, and what the subscribers received.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Proc } from '../../test/support/procs.js';
import { cpuSeconds, machineCpuSeconds, rssBytes, usageWindow, type UsageReport } from '../support/procfs.js';
import type { BrokerName, RunningBroker } from './brokers.js';
import { BUCKET_US, type GenReport, type GenSpec } from './gen-spec.js';

const ROOT = resolve(import.meta.dirname, '../..');
/** Other processes using more than this much CPU (% of one core) during a run make it "noisy". */
export const NOISY_PCT = 25;
export const PAYLOAD_BYTES = 64;
const KEEPALIVE_S = 60;
const READY_LIMIT_MS = 240_000;
const REPLY_LIMIT_MS = 15_000;

export interface Scenario {
  key: string;
  title: string;
  kind: 'throughput' | 'latency';
  qos: 0 | 1;
  /** Generator processes; each gets an equal share of the publishers and of the subscribers. */
  procs: number;
  pubs: { conns: number; topic: string };
  subs: { conns: number; filter: string };
  /** Subscribers each published message reaches. */
  fanout: number;
  /** Messages per second from all publishers together; 0 = closed loop at full speed. */
  ratePerS: number;
  /** Closed loop: copies on their way per generator process, at most. */
  inflight: number;
}

export interface Row {
  broker: BrokerName;
  scenario: Scenario;
  round: number;
  seconds: number;
  sent: number;
  received: number;
  behind: number;
  lost: number;
  dropped: number;
  latency: { p50Us: number; p90Us: number; p99Us: number; p999Us: number; maxUs: number } | undefined;
  usage: UsageReport;
  /** Set when the broker process died during the run: the error it printed. */
  crashed?: string;
  /** Set when it died after the measured window, while it worked through what was left: the figures stand. */
  crashedAfter?: string;
}

export const exited = (b: RunningBroker): boolean => b.proc.child.exitCode !== null || b.proc.child.signalCode !== null;

/** What a broker that died printed about it: its last error line. */
export function crashReason(b: RunningBroker): string {
  const line = b.proc.lines.findLast((l) => /Error|error|Killed|abort/.test(l)) ?? `exit ${b.proc.child.exitCode ?? b.proc.child.signalCode}`;
  return line.trim().slice(0, 200);
}

export interface Timing {
  warmupS: number;
  durationS: number;
  batch: number;
  pubackWindow: number;
}

/** A generator process with a command line on its stdin. */
class Generator {
  readonly proc: Proc;

  constructor(spec: GenSpec, nodeFlags: string[]) {
    const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', join(ROOT, 'bench/mqtt/load.ts'), JSON.stringify(spec)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.on('error', () => undefined); // the process may be gone already
    this.proc = new Proc(child, spec.name);
  }

  get pid(): number {
    return this.proc.child.pid!;
  }

  async ready(): Promise<{ conns: number; failed: number }> {
    const line = await this.proc.waitFor((l) => l.startsWith('{"ready"'), READY_LIMIT_MS, 'connections ready');
    return (JSON.parse(line) as { ready: { conns: number; failed: number } }).ready;
  }

  /** Sends a command; with `reply`, waits for the next line starting with it. */
  async send(cmd: string, reply?: string): Promise<string | undefined> {
    const seen = this.proc.lines.length;
    this.proc.child.stdin!.write(`${cmd}\n`);
    if (reply === undefined) return undefined;
    return this.proc.waitFor((l) => l.startsWith(reply) && this.proc.lines.indexOf(l, seen) >= seen, REPLY_LIMIT_MS, `${cmd} reply`);
  }

  /** Asks it to close its connections and exit; killed if it has not within 5 s. */
  async stop(): Promise<void> {
    const child = this.proc.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.stdin!.end('stop\n');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await this.proc.exited;
    clearTimeout(t);
  }
}

/** `total` connections over `procs` processes: [first, count] for each. */
function split(total: number, procs: number): Array<[number, number]> {
  const per = Math.ceil(total / procs);
  const out: Array<[number, number]> = [];
  for (let first = 0; first < total; first += per) out.push([first, Math.min(per, total - first)]);
  return out;
}

/**
 * The machine is shared: wait, up to `limitS`, for a second in which it is nearly idle, so a run starts
 * clean. Our own brokers are idle between runs.
 */
export async function waitForQuiet(limitS: number): Promise<void> {
  const deadline = Date.now() + limitS * 1000;
  do {
    const before = machineCpuSeconds().busy;
    await sleep(1000);
    if ((machineCpuSeconds().busy - before) * 100 < NOISY_PCT) return;
  } while (Date.now() < deadline);
  process.stderr.write(`  machine still busy after ${limitS} s; measuring anyway\n`);
}

/** Waits, up to `limitS`, until the broker has been nearly idle for a second: what a run left queued is done. */
export async function waitForBrokerIdle(pid: number, limitS: number): Promise<void> {
  const deadline = Date.now() + limitS * 1000;
  const cpu = (): number => (existsSync(`/proc/${pid}`) ? cpuSeconds(pid).total : NaN);
  do {
    const before = cpu();
    await sleep(1000);
    const used = cpu() - before;
    if (Number.isNaN(used) || used * 100 < 5) return;
  } while (Date.now() < deadline);
  process.stderr.write(`  broker still busy after ${limitS} s\n`);
}

function percentiles(reports: GenReport[]): Row['latency'] {
  const counts = new Map<number, number>();
  let total = 0;
  for (const r of reports) {
    for (const [b, n] of r.hist) {
      counts.set(b, (counts.get(b) ?? 0) + n);
      total += n;
    }
  }
  if (total === 0) return undefined;
  const buckets = [...counts.keys()].sort((a, b) => a - b);
  const at = (p: number): number => {
    const want = Math.ceil(total * p);
    let seen = 0;
    for (const b of buckets) {
      seen += counts.get(b)!;
      if (seen >= want) return (b + 1) * BUCKET_US;
    }
    return NaN;
  };
  return { p50Us: at(0.5), p90Us: at(0.9), p99Us: at(0.99), p999Us: at(0.999), maxUs: (buckets.at(-1)! + 1) * BUCKET_US };
}

/** Runs `sc` against `b`: generators up (subscribers first), warm-up, measured window, every generator stopped. */
export async function runScenario(b: RunningBroker, sc: Scenario, round: number, t: Timing): Promise<Row> {
  const pubShare = split(sc.pubs.conns, sc.procs);
  const subShare = split(sc.subs.conns, sc.procs);
  const gens = pubShare.map(([pubFirst, pubConns], k) => new Generator({
    port: b.port, ...(b.peer === undefined ? {} : { subPort: b.peer.port }), name: `${b.name}-${sc.key}-r${round}-g${k}`,
    subs: { conns: subShare[k]![1], first: subShare[k]![0], topic: sc.subs.filter },
    pubs: { conns: pubConns, first: pubFirst, topic: sc.pubs.topic },
    idle: 0, qos: sc.qos, payloadBytes: PAYLOAD_BYTES, fanout: sc.fanout, ratePerS: sc.ratePerS / pubShare.length, inflight: sc.inflight,
    batch: t.batch, pubackWindow: t.pubackWindow, keepaliveS: KEEPALIVE_S, connectConcurrency: 100,
  }, []));
  try {
    for (const g of gens) await expectAll(g);
    for (const g of gens) await g.send('start');
    await sleep(t.warmupS * 1000);
    await Promise.all(gens.map((g) => g.send('mark', '{"marked"')));
    const window = usageWindow({ broker: b.pid, ...(b.peer === undefined ? {} : { peer: b.peer.pid }), ...Object.fromEntries(gens.map((g, i) => [`gen${i}`, g.pid])) });
    const t0 = process.hrtime.bigint();
    await sleep(t.durationS * 1000);
    const lines = await Promise.all(gens.map((g) => g.send('report', '{"report"')));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const usage = window.stop();
    const reports = lines.map((l) => (JSON.parse(l!) as { report: GenReport }).report);
    const sum = (k: 'sent' | 'received' | 'behind' | 'lost' | 'dropped'): number => reports.reduce((n, r) => n + r[k], 0);
    return {
      ...(exited(b) ? { crashed: crashReason(b) } : {}),
      broker: b.name, scenario: sc, round, seconds,
      sent: sum('sent'), received: sum('received'), behind: sum('behind'), lost: sum('lost'), dropped: sum('dropped'),
      latency: percentiles(reports),
      usage,
    };
  } finally {
    await Promise.all(gens.map((g) => g.stop()));
  }
}

async function expectAll(g: Generator): Promise<void> {
  const r = await g.ready();
  if (r.failed > 0) throw new Error(`${g.proc.name}: ${r.failed} of ${r.conns + r.failed} clients could not connect or subscribe`);
}

export interface IdleRow {
  broker: BrokerName;
  round: number;
  connections: number;
  failed: number;
  dropped: number;
  connectS: number;
  rssBefore: number;
  rssAfter: number;
  idleCpuPct: number;
}

/** Opens `total` idle clients (CONNECT, CONNACK, PINGREQ every 30 s) through `procs` generators and reads the broker's RSS before and after. */
export async function measureIdle(b: RunningBroker, total: number, procs: number, round: number, settleS: number): Promise<IdleRow> {
  await sleep(settleS * 1000);
  const rssBefore = rssBytes(b.pid);
  const started = Date.now();
  const none = { conns: 0, first: 0, topic: '' };
  const gens = split(total, procs).map(([, conns], k) => new Generator({
    port: b.port, name: `${b.name}-idle-r${round}-g${k}`, subs: none, pubs: none, idle: conns, qos: 0, payloadBytes: PAYLOAD_BYTES,
    fanout: 1, ratePerS: 0, inflight: 0, batch: 1, pubackWindow: 1, keepaliveS: KEEPALIVE_S, connectConcurrency: 100,
  }, []));
  try {
    const progress = setInterval(() => {
      const up = gens.reduce((n, g) => n + ((JSON.parse(g.proc.lines.findLast((l) => l.startsWith('{"up"')) ?? '{"up":0}') as { up: number }).up), 0);
      process.stderr.write(`  ${b.name}: ${up}/${total} idle clients up\n`);
    }, 5000);
    const ready = await Promise.all(gens.map((g) => g.ready())).finally(() => clearInterval(progress));
    const connectS = (Date.now() - started) / 1000;
    await sleep(settleS * 1000);
    const rssAfter = rssBytes(b.pid);
    const cpu0 = cpuSeconds(b.pid).total;
    const w0 = Date.now();
    await sleep(settleS * 1000);
    const idleCpuPct = ((cpuSeconds(b.pid).total - cpu0) / ((Date.now() - w0) / 1000)) * 100;
    const lines = await Promise.all(gens.map((g) => g.send('report', '{"report"')));
    const dropped = lines.reduce((n, l) => n + (JSON.parse(l!) as { report: GenReport }).report.dropped, 0);
    return {
      broker: b.name, round, connectS, rssBefore, rssAfter, idleCpuPct, dropped,
      connections: ready.reduce((n, r) => n + r.conns, 0),
      failed: ready.reduce((n, r) => n + r.failed, 0),
    };
  } finally {
    await Promise.all(gens.map((g) => g.stop()));
  }
}
