// MQTT brokers compared in one run: the hub (bin/cloudrest.js hub), Mosquitto (its own instance, own
// port, own config) and Aedes (in-memory persistence), each its own process, under the same load from
// generator processes (load.ts; raw sockets, MQTT 3.1.1, clean sessions, 64-byte payloads):
//
//   fan-in      100 publishers → 1 subscriber (bench/fanin/{i}, filter bench/fanin/+), QoS 0 and QoS 1
//   fan-out     1 publisher → 1,000 subscribers (bench/fanout), QoS 0 and QoS 1
//   p2p         20 publishers, each to its own subscriber (bench/p2p/{i}), QoS 0 and QoS 1
//   latency     10 publisher/subscriber pairs at a fixed total rate, the same for every broker, QoS 0 and 1
//   idle        10,000 connected idle clients: each broker's RSS before and after (a fresh process each),
//               against a bare Node net server holding as many sockets (the floor)
//
// The latency scenarios also run the floor as a relay (floor-server.ts: exact topics, bytes passed on
// unchanged): what a Node process pays per message through `net` streams before any broker code.
//
// Throughput is a closed loop: publishers send while fewer than BENCH_INFLIGHT copies (fan-out: 32
// messages to each subscriber) are published and not yet received, so the broker always has work and is
// never pushed into dropping messages; only messages the subscribers received are counted.
//
//   npm run bench:mqtt
//   BENCH_DURATION_S=10 BENCH_WARMUP_S=2 BENCH_ROUNDS=1   per run; rounds alternate the broker order
//   BENCH_BROKERS=hub,mosquitto,aedes,hub-cluster  BENCH_SCENARIOS=fanin-q0,...,latency-q1,idle (default: all)
//                                      hub-cluster: two hub nodes on one Redis (the test Redis, a key prefix
//                                      of this run); publishers on node A, subscribers on node B, so every
//                                      message crosses nodes (idle: clients on node A)
//   BENCH_PREVIOUS=REF                 also hub-b: the hub of an earlier commit (bench/support/previous-build.ts),
//                                      this build against that one in the same run
//   BENCH_RATE=5000                    latency scenarios: messages per second, all publishers together
//   BENCH_IDLE_CONNS=10000  BENCH_IDLE_PROCS=2  BENCH_SETTLE_S=5
//   BENCH_INFLIGHT=1000                closed loop: copies on their way per generator process
//   BENCH_BATCH=32  BENCH_WINDOW=100   full speed: PUBLISHes per write; QoS 1 PUBACK window per publisher
//   BENCH_QUIET_WAIT_S=30              before each run, wait up to this long for the machine to be idle
//   BENCH_PROFILE=DIR                  the hub under --cpu-prof, profiles in DIR (bench/support/cpuprofile-top.ts)
//   BENCH_HUB_FLAGS='--trace-gc'       more Node flags for the hub (and hub-b), space-separated; with
//                                      CLOUDREST_TEST_VERBOSE=1 what they print shows on stderr
//   BENCH_HUB_B=.bench-tmp/a/dist/cli/main.js  with hub-b in BENCH_BROKERS: a second hub from that build (A/B runs)
//   BENCH_HUB_B_FLAGS='--min-semi-space-size=8'  Node flags for hub-b instead of BENCH_HUB_FLAGS (A/B of flags:
//                                      BENCH_HUB_B=dist/cli/main.js runs the same build twice)
//   BENCH_MOSQUITTO_NODELAY=false      Mosquitto with Nagle on (its default; the bench turns it off, as the hub does)
//   BENCH_FLOOR=0                      latency scenarios without the bare Node relay (floor)
//
// Targets (issue 3): throughput >= 1.5x Aedes and >= 0.8x Mosquitto; p99 no worse than Mosquitto's at
// the same rate; at most 6 KB of hub RSS per idle connection. Issue 14: a message that crosses nodes
// costs at most 2x the broker CPU of a local one (hub-cluster against hub); this build is no slower
// than the previous one (hub against hub-b).
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { tempDir } from '../../test/support/procs.js';
import { testRedis, type TestRedis } from '../../test/support/services.js';
import { rerunWithOpenFiles } from '../support/fds.js';
import { previousFromEnv } from '../support/previous-build.js';
import { startBroker, startFloorCluster, startHubCluster, MAX_INFLIGHT, MAX_QUEUED, type BrokerName, type RunningBroker } from './brokers.js';
import { costTable, GENERATOR_BOUND_PCT, idleTable, latencyTable, throughputTable, verdicts } from './report.js';
import { crashReason, exited, measureIdle, runScenario, waitForBrokerIdle, waitForQuiet, PAYLOAD_BYTES, type IdleRow, type Row, type Scenario } from './run.js';

const FD_LIMIT = 65_536;

// Each idle client is a file descriptor in the broker and in a generator.
rerunWithOpenFiles(FD_LIMIT);

const env = (k: string, d: number): number => Number(process.env[k] ?? d);
const DURATION_S = env('BENCH_DURATION_S', 10);
const WARMUP_S = env('BENCH_WARMUP_S', 2);
const ROUNDS = env('BENCH_ROUNDS', 1);
const RATE = env('BENCH_RATE', 5000);
const IDLE_CONNS = env('BENCH_IDLE_CONNS', 10_000);
const IDLE_PROCS = env('BENCH_IDLE_PROCS', 2);
const SETTLE_S = env('BENCH_SETTLE_S', 5);
const QUIET_WAIT_S = env('BENCH_QUIET_WAIT_S', 30);
const timing = { warmupS: WARMUP_S, durationS: DURATION_S, batch: env('BENCH_BATCH', 32), pubackWindow: env('BENCH_WINDOW', MAX_INFLIGHT) };
const PREVIOUS = previousFromEnv();
if (PREVIOUS !== undefined) process.env.BENCH_HUB_B = PREVIOUS.cli;
const BROKERS = (process.env.BENCH_BROKERS ?? `hub,mosquitto,aedes,hub-cluster${PREVIOUS ? ',hub-b' : ''}`).split(',') as BrokerName[];
const PROFILE_DIR = process.env.BENCH_PROFILE;
const flagList = (v: string | undefined): string[] => (v ?? '').split(' ').filter((f) => f !== '');
const HUB_FLAGS = flagList(process.env.BENCH_HUB_FLAGS);
const HUB_B_FLAGS = process.env.BENCH_HUB_B_FLAGS === undefined ? HUB_FLAGS : flagList(process.env.BENCH_HUB_B_FLAGS);

const INFLIGHT = env('BENCH_INFLIGHT', 1000);
const fanin = (qos: 0 | 1): Scenario => ({ key: `fanin-q${qos}`, title: `fan-in QoS ${qos} (100 → 1)`, kind: 'throughput', qos, procs: 1, fanout: 1, ratePerS: 0, inflight: INFLIGHT,
  pubs: { conns: 100, topic: 'bench/fanin/{i}' }, subs: { conns: 1, filter: 'bench/fanin/+' } });
const fanout = (qos: 0 | 1): Scenario => ({ key: `fanout-q${qos}`, title: `fan-out QoS ${qos} (1 → 1,000)`, kind: 'throughput', qos, procs: 1, fanout: 1000, ratePerS: 0, inflight: 32_000,
  pubs: { conns: 1, topic: 'bench/fanout' }, subs: { conns: 1000, filter: 'bench/fanout' } });
const p2p = (qos: 0 | 1): Scenario => ({ key: `p2p-q${qos}`, title: `point-to-point QoS ${qos} (20 pairs)`, kind: 'throughput', qos, procs: 2, fanout: 1, ratePerS: 0, inflight: INFLIGHT,
  pubs: { conns: 20, topic: 'bench/p2p/{i}' }, subs: { conns: 20, filter: 'bench/p2p/{i}' } });
const latency = (qos: 0 | 1): Scenario => ({ key: `latency-q${qos}`, title: `latency QoS ${qos} (10 pairs, ${RATE} msg/s)`, kind: 'latency', qos, procs: 1, fanout: 1, ratePerS: RATE, inflight: 0,
  pubs: { conns: 10, topic: 'bench/lat/{i}' }, subs: { conns: 10, filter: 'bench/lat/{i}' } });
const ALL = [fanin(0), fanin(1), fanout(0), fanout(1), p2p(0), p2p(1), latency(0), latency(1)];
const wanted = new Set((process.env.BENCH_SCENARIOS ?? [...ALL.map((s) => s.key), 'idle'].join(',')).split(','));
const scenarios = ALL.filter((s) => wanted.has(s.key));

const work = tempDir('cloudrest-bench-mqtt-');
const running = new Set<RunningBroker>();
let redis: TestRedis | undefined;
const stopAll = async (): Promise<void> => {
  for (const b of running) await stopped(b).catch(() => undefined);
  running.clear();
  await redis?.drop();
  work.remove();
};
const stopped = async (b: RunningBroker): Promise<void> => {
  await b.proc.stop('SIGTERM', 10_000);
  await b.peer?.proc.stop('SIGTERM', 10_000);
};
process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));

async function start(name: BrokerName, round: number): Promise<RunningBroker> {
  const profile = PROFILE_DIR && name.startsWith('hub') ? ['--cpu-prof', `--cpu-prof-dir=${join(resolve(PROFILE_DIR), `${name}-r${round}`)}`] : [];
  const hubFlags = name === 'hub-b' ? HUB_B_FLAGS : HUB_FLAGS;
  const flags = name.startsWith('hub') ? [...hubFlags, ...profile] : profile;
  let b: RunningBroker;
  if (name === 'hub-cluster') {
    redis ??= await testRedis();
    b = await startHubCluster(work.path, redis.url, `${redis.keyPrefix}r${round}:`, flags);
  } else if (name === 'floor-cluster') {
    redis ??= await testRedis();
    b = await startFloorCluster(redis.url, `${redis.keyPrefix}r${round}:`);
  } else {
    b = await startBroker(name, work.path, flags);
  }
  running.add(b);
  return b;
}

async function stop(b: RunningBroker): Promise<void> {
  await stopped(b);
  running.delete(b);
}

/** A run in which the broker died before the subscribers could be counted. */
function crashedRow(b: RunningBroker, scenario: Scenario, round: number): Row {
  const usage = { processes: {}, machinePct: NaN, otherPct: 0, stealPct: NaN };
  return { broker: b.name, scenario, round, seconds: 1, sent: 0, received: 0, behind: 0, lost: 0, dropped: 0, latency: undefined, usage, crashed: crashReason(b) };
}

/** The broker order of a round: rotated each round, so no broker always runs first or last. */
const order = (round: number): BrokerName[] => BROKERS.map((_b, i) => BROKERS[(i + round - 1) % BROKERS.length]!);
const FLOOR_RELAY = process.env.BENCH_FLOOR !== '0';
/** Who runs a scenario: the brokers, and in the latency scenarios the bare Node relay too (rotated in). */
function lineup(sc: Scenario, round: number): BrokerName[] {
  if (sc.kind !== 'latency' || !FLOOR_RELAY || BROKERS.includes('floor')) return order(round);
  // Beside two hub nodes, the floor of a crossing too: two bare relays through Redis.
  const all: BrokerName[] = [...BROKERS, 'floor', ...(BROKERS.includes('hub-cluster') ? ['floor-cluster' as const] : [])];
  return all.map((_b, i) => all[(i + round - 1) % all.length]!);
}

const rows: Row[] = [];
const idle: IdleRow[] = [];
const load = (): string => loadavg().map((n) => n.toFixed(2)).join(' ');
const started = `load average at start: ${load()}`;
try {
  for (let round = 1; round <= ROUNDS; round++) {
    if (scenarios.length > 0) {
      const brokers = new Map<BrokerName, RunningBroker>();
      for (const name of order(round)) brokers.set(name, await start(name, round));
      for (const sc of scenarios) {
        for (const name of lineup(sc, round)) {
          if (!brokers.has(name)) brokers.set(name, await start(name, round));
          await waitForQuiet(QUIET_WAIT_S);
          process.stderr.write(`round ${round}: ${sc.title} on ${name}: ${WARMUP_S} s warm-up + ${DURATION_S} s\n`);
          let broker = brokers.get(name)!;
          const row = await runScenario(broker, sc, round, timing).catch((err: unknown) => {
            if (!exited(broker)) throw err;
            return crashedRow(broker, sc, round);
          });
          rows.push(row);
          if (row.crashed !== undefined) {
            process.stderr.write(`  ${name} crashed: ${row.crashed}; starting a new one\n`);
            await broker.peer?.proc.stop('SIGKILL').catch(() => undefined);
            running.delete(broker);
            brokers.set(name, (broker = await start(name, round)));
            continue;
          }
          process.stderr.write(`  ${(row.received / row.seconds).toFixed(0)} msg/s received${row.latency ? `, p99 ${(row.latency.p99Us / 1000).toFixed(2)} ms` : ''}\n`);
          await waitForBrokerIdle(broker.pid, 30); // queues left by the run drain before the next one
          if (broker.peer !== undefined) await waitForBrokerIdle(broker.peer.pid, 30);
          if (exited(broker)) {
            row.crashedAfter = crashReason(broker);
            process.stderr.write(`  ${name} crashed after the measured window: ${row.crashedAfter}; starting a new one\n`);
            await broker.peer?.proc.stop('SIGKILL').catch(() => undefined);
            running.delete(broker);
            brokers.set(name, await start(name, round));
          }
        }
      }
      for (const b of brokers.values()) await stop(b);
    }
    if (wanted.has('idle')) {
      for (const name of [...order(round), 'floor' as const]) {
        if (name === 'floor' && round > 1) continue;
        await waitForQuiet(QUIET_WAIT_S);
        process.stderr.write(`round ${round}: ${IDLE_CONNS} idle clients on ${name}\n`);
        const b = await start(name, round);
        try {
          idle.push(await measureIdle(b, IDLE_CONNS, IDLE_PROCS, round, SETTLE_S));
        } finally {
          await stop(b);
        }
      }
    }
  }
  const kernel = readFileSync('/proc/version', 'utf8').split(' ').slice(0, 3).join(' ');
  process.stdout.write(`\n## MQTT benchmark (node ${process.version}, ${kernel}; ${started}, at end: ${load()})\n\n`);
  process.stdout.write(`${DURATION_S} s measured after ${WARMUP_S} s warm-up per run; ${PAYLOAD_BYTES}-byte payloads; MQTT 3.1.1 clean sessions; `
    + `full-speed publishers write ${timing.batch} PUBLISHes per write, QoS 1 PUBACK window ${timing.pubackWindow}; Mosquitto with max_inflight_messages ${MAX_INFLIGHT}, max_queued_messages ${MAX_QUEUED}, no persistence.\n\n`);
  if (rows.some((r) => r.scenario.kind === 'throughput')) process.stdout.write(`### Throughput\n\n${throughputTable(rows)}\n\n`);
  if (rows.some((r) => r.scenario.kind === 'latency')) process.stdout.write(`### Latency at a fixed rate\n\n${latencyTable(rows)}\n\n`);
  if (idle.length > 0) process.stdout.write(`### Idle connections\n\n${idleTable(idle)}\n\n`);
  if (rows.length > 0) process.stdout.write(`### CPU per process\n\n${costTable(rows)}\n\n`);
  process.stdout.write(`(noisy) = other processes on the machine used over 25 % of a core during the run; (generator-bound) = a generator process used over ${GENERATOR_BOUND_PCT} % of a core; verdicts use the median quiet round\n\n### Verdict\n\n${verdicts(rows, idle).join('\n')}\n`);
} finally {
  await stopAll();
}
