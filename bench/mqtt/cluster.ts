// The MQTT broker across two hub nodes against one hub, in the same run (issue 14 §3): the same load
// generators (load.ts) as bench/mqtt/main.ts; on the cluster, publishers connect to node A and
// subscribers to node B (--redis on the test Redis, a key prefix of this run), so every message is
// forwarded across nodes; on the single hub, both connect to it.
//
//   p2p       20 publishers, each to its own subscriber, QoS 0 and 1 (closed loop, full speed)
//   fan-out   1 publisher → 100 subscribers, QoS 0 (closed loop)
//   latency   10 pairs at BENCH_RATE msg/s in total, QoS 1: p50 / p99
//
// Broker CPU per message: the CPU of the broker processes (both nodes for the cluster) in the measured
// window over the messages the subscribers received. Target: a message that crosses nodes costs at most
// 2x a local one.
//
//   node --import tsx bench/mqtt/cluster.ts      (npm run bench:mqtt-cluster)
//   BENCH_DURATION_S=10 BENCH_WARMUP_S=2 BENCH_RATE=5000 BENCH_SCENARIOS=p2p-q0,p2p-q1,fanout-q0,latency-q1
import { join } from 'node:path';
import { tempDir } from '../../test/support/procs.js';
import { testRedis } from '../../test/support/services.js';
import { startBroker, startHubCluster, type RunningBroker } from './brokers.js';
import { runScenario, waitForBrokerIdle, type Row, type Scenario } from './run.js';

const env = (k: string, d: number): number => Number(process.env[k] ?? d);
const DURATION_S = env('BENCH_DURATION_S', 10);
const WARMUP_S = env('BENCH_WARMUP_S', 2);
const RATE = env('BENCH_RATE', 5000);
const timing = { warmupS: WARMUP_S, durationS: DURATION_S, batch: env('BENCH_BATCH', 32), pubackWindow: env('BENCH_WINDOW', 100) };

const p2p = (qos: 0 | 1): Scenario => ({ key: `p2p-q${qos}`, title: `point-to-point QoS ${qos} (20 pairs)`, kind: 'throughput', qos, procs: 1, fanout: 1, ratePerS: 0, inflight: 1000,
  pubs: { conns: 20, topic: 'bench/p2p/{i}' }, subs: { conns: 20, filter: 'bench/p2p/{i}' } });
const ALL: Scenario[] = [
  p2p(0),
  p2p(1),
  { key: 'fanout-q0', title: 'fan-out QoS 0 (1 → 100)', kind: 'throughput', qos: 0, procs: 1, fanout: 100, ratePerS: 0, inflight: 3200,
    pubs: { conns: 1, topic: 'bench/fanout' }, subs: { conns: 100, filter: 'bench/fanout' } },
  { key: 'latency-q1', title: `latency QoS 1 (10 pairs, ${RATE} msg/s)`, kind: 'latency', qos: 1, procs: 1, fanout: 1, ratePerS: RATE, inflight: 0,
    pubs: { conns: 10, topic: 'bench/lat/{i}' }, subs: { conns: 10, filter: 'bench/lat/{i}' } },
];
const wanted = new Set((process.env.BENCH_SCENARIOS ?? ALL.map((s) => s.key).join(',')).split(','));
const scenarios = ALL.filter((s) => wanted.has(s.key));

/** Broker CPU µs per received message: both nodes of a cluster. */
function cpuUsPerMsg(r: Row): number {
  const pct = (r.usage.processes.broker?.cpuPct ?? 0) + (r.usage.processes.peer?.cpuPct ?? 0);
  return ((pct / 100) * r.seconds * 1e6) / Math.max(1, r.received);
}

const work = tempDir('cloudrest-bench-cluster-');
const redis = await testRedis();
const rows: Row[] = [];
const brokers: RunningBroker[] = [];
try {
  const single = await startBroker('hub', work.path);
  brokers.push(single);
  const cluster = await startHubCluster(join(work.path), redis.url, redis.keyPrefix);
  brokers.push(cluster);
  for (const sc of scenarios) {
    for (const b of [single, cluster]) {
      process.stderr.write(`${sc.title} on ${b.name}: ${WARMUP_S} s warm-up + ${DURATION_S} s\n`);
      const row = await runScenario(b, sc, 1, timing);
      rows.push(row);
      process.stderr.write(`  ${(row.received / row.seconds).toFixed(0)} msg/s${row.latency ? `, p99 ${(row.latency.p99Us / 1000).toFixed(2)} ms` : ''}, ${cpuUsPerMsg(row).toFixed(1)} µs CPU/msg\n`);
      await waitForBrokerIdle(b.pid, 30);
      if (b.peer !== undefined) await waitForBrokerIdle(b.peer.pid, 30);
    }
  }
  process.stdout.write(`\n## MQTT across nodes: 2 hub nodes (publishers on A, subscribers on B) against 1 hub\n\n${DURATION_S} s measured after ${WARMUP_S} s warm-up; 64-byte payloads; MQTT 3.1.1 clean sessions\n\n`);
  process.stdout.write('| scenario | setup | msg/s received | p50 ms | p99 ms | lost | broker CPU µs/msg | cluster / single |\n|---|---|---:|---:|---:|---:|---:|---:|\n');
  for (const sc of scenarios) {
    const one = rows.find((r) => r.scenario === sc && r.broker === 'hub');
    for (const r of rows.filter((x) => x.scenario === sc)) {
      const ratio = r.broker === 'hub-cluster' && one !== undefined ? `${(cpuUsPerMsg(r) / cpuUsPerMsg(one)).toFixed(2)}x` : '';
      const lat = r.latency;
      process.stdout.write(`| ${sc.title} | ${r.broker === 'hub' ? '1 node' : '2 nodes, cross-node'} | ${(r.received / r.seconds).toFixed(0)} | ${lat ? (lat.p50Us / 1000).toFixed(2) : ''} | ${lat ? (lat.p99Us / 1000).toFixed(2) : ''} | ${r.lost} | ${cpuUsPerMsg(r).toFixed(1)} | ${ratio} |\n`);
    }
  }
} finally {
  for (const b of brokers) {
    await b.proc.stop('SIGTERM', 10_000).catch(() => undefined);
    await b.peer?.proc.stop('SIGTERM', 10_000).catch(() => undefined);
  }
  await redis.drop();
  work.remove();
}
