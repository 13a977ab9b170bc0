// Tables and verdicts of the MQTT benchmark: broker × scenario, ratios against Aedes and Mosquitto, and
// MET/MISSED per target. Every figure comes from the rows of this run.
import type { BrokerName } from './brokers.js';
import { NOISY_PCT, type IdleRow, type Row } from './run.js';

/**
 * Targets: throughput against Aedes and Mosquitto, p99 against Mosquitto, idle RSS (issue 3 §3); broker
 * CPU per message across two nodes against one (issue 14 §3); this build against the previous one, where
 * 0.9x is the run-to-run spread of this 2-core machine, not a slowdown allowed.
 */
export const TARGETS = { vsAedes: 1.5, vsMosquitto: 0.8, idleKbPerConn: 6, clusterCpuX: 2, vsPrevious: 0.9 };

const fmt = (n: number | undefined, digits = 0): string => (n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : '-');
const ms = (us: number | undefined): string => fmt(us === undefined ? undefined : us / 1000, 2);
export const noisy = (r: Row): boolean => r.usage.otherPct > NOISY_PCT;
export const rate = (r: Row): number => r.received / r.seconds;
const kbPerConn = (r: IdleRow): number => (r.rssAfter - r.rssBefore) / 1024 / Math.max(1, r.connections);
const crashNote = (r: Row): string => (r.crashedAfter === undefined ? '' : ` (crashed after the window: ${r.crashedAfter.replaceAll('|', '/')})`);
const mb = (b: number): string => (b / 1024 / 1024).toFixed(1);
/** The floor relays messages in the latency runs: a Node process with no broker code (floor-server.ts). */
const TITLES: Partial<Record<BrokerName, string>> = { floor: 'bare Node relay (floor)', 'hub-cluster': 'hub-cluster (A → B)', 'floor-cluster': 'two bare relays through Redis (floor, A → B)' };
const brokerTitle = (b: BrokerName): string => TITLES[b] ?? b;
/** The broker's processes in a row: both nodes of a cluster ('peer' is node B). */
const BROKER_PROCS = ['broker', 'peer'];

/** CPU µs a process (or the generators together) spent per message received. */
function usPerMsg(r: Row, names: string[]): number {
  const pct = names.reduce((s, k) => s + (r.usage.processes[k]?.cpuPct ?? 0), 0);
  return ((pct / 100) * 1e6) / rate(r);
}
const generators = (r: Row): string[] => Object.keys(r.usage.processes).filter((k) => !BROKER_PROCS.includes(k));
const brokerPct = (r: Row): number => BROKER_PROCS.reduce((s, k) => s + (r.usage.processes[k]?.cpuPct ?? 0), 0);
const genPct = (r: Row): number => generators(r).reduce((s, k) => s + r.usage.processes[k]!.cpuPct, 0);
/** A generator process that used this much of a core may have been what limited the run. */
export const GENERATOR_BOUND_PCT = 90;
const generatorBound = (r: Row): boolean => generators(r).some((k) => r.usage.processes[k]!.cpuPct >= GENERATOR_BOUND_PCT);
const flags = (r: Row): string => `${noisy(r) ? ' (noisy)' : ''}${generatorBound(r) ? ' (generator-bound)' : ''}${crashNote(r)}`;

/**
 * The median round among quiet rounds (all rounds if none was quiet): by received rate in throughput
 * scenarios, by p99 in latency scenarios (where every broker receives the rate asked).
 */
export function median(rows: Row[], broker: BrokerName, key: string): Row | undefined {
  const matching = rows.filter((r) => r.broker === broker && r.scenario.key === key && r.crashed === undefined);
  const quiet = matching.filter((r) => !noisy(r));
  const by = (r: Row): number => (r.scenario.kind === 'latency' ? (r.latency?.p99Us ?? Infinity) : rate(r));
  const sorted = (quiet.length > 0 ? quiet : matching).sort((a, b) => by(a) - by(b));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

function ratio(rows: Row[], r: Row, other: BrokerName): string {
  const o = median(rows, other, r.scenario.key);
  return o === undefined || r.broker === other ? '' : `${fmt(rate(r) / rate(o), 2)}x`;
}

export function throughputTable(rows: Row[]): string {
  const lines = [
    '| scenario | broker | round | msgs received/s | published/s | lost % | broker CPU % | broker µs/msg | generators CPU % | vs Aedes | vs Mosquitto |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows.filter((x) => x.scenario.kind === 'throughput')) {
    if (r.crashed !== undefined) {
      lines.push(`| ${r.scenario.title} | ${brokerTitle(r.broker)} | ${r.round} | crashed: ${r.crashed.replaceAll('|', '/')} | | | | | | | |`);
      continue;
    }
    const expected = r.sent * r.scenario.fanout;
    const lost = expected > 0 ? (r.lost / expected) * 100 : NaN;
    lines.push(`| ${r.scenario.title} | ${brokerTitle(r.broker)} | ${r.round}${flags(r)} | ${fmt(rate(r))} | ${fmt(r.sent / r.seconds)} | ${fmt(lost, 1)} | ${fmt(brokerPct(r))} | ${fmt(usPerMsg(r, BROKER_PROCS), 1)} | ${fmt(genPct(r))} | ${ratio(rows, r, 'aedes')} | ${ratio(rows, r, 'mosquitto')} |`);
  }
  return lines.join('\n');
}

export function latencyTable(rows: Row[]): string {
  const lines = [
    '| scenario | broker | round | rate asked/s | msgs received/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | behind | broker CPU % | broker µs/msg |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows.filter((x) => x.scenario.kind === 'latency')) {
    if (r.crashed !== undefined) {
      lines.push(`| ${r.scenario.title} | ${brokerTitle(r.broker)} | ${r.round} | ${r.scenario.ratePerS} | crashed: ${r.crashed.replaceAll('|', '/')} | | | | | | | | |`);
      continue;
    }
    const l = r.latency;
    lines.push(`| ${r.scenario.title} | ${brokerTitle(r.broker)} | ${r.round}${flags(r)} | ${r.scenario.ratePerS} | ${fmt(rate(r))} | ${ms(l?.p50Us)} | ${ms(l?.p90Us)} | ${ms(l?.p99Us)} | ${ms(l?.p999Us)} | ${ms(l?.maxUs)} | ${r.behind} | ${fmt(brokerPct(r))} | ${fmt(usPerMsg(r, BROKER_PROCS), 1)} |`);
  }
  return lines.join('\n');
}

export function costTable(rows: Row[]): string {
  const lines = [
    '| scenario | broker | round | process | CPU % of a core | of which kernel | CPU µs / msg received | syscalls / msg |',
    '|---|---|---:|---|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    for (const [k, u] of Object.entries(r.usage.processes)) {
      lines.push(`| ${r.scenario.title} | ${r.broker} | ${r.round} | ${k} | ${fmt(u.cpuPct)} | ${fmt(u.sysPct)} | ${fmt(usPerMsg(r, [k]), 2)} | ${fmt((u.reads + u.writes) / Math.max(1, r.received), 2)} |`);
    }
  }
  return lines.join('\n');
}

export function idleTable(rows: IdleRow[]): string {
  const lines = [
    '| server | round | clients up | failed / dropped | connect s | RSS before MB | RSS after MB | RSS KB per connection | idle CPU % of a core |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const name = r.broker === 'floor' ? 'bare Node net server (floor)' : r.broker;
    lines.push(`| ${name} | ${r.round} | ${r.connections} | ${r.failed} / ${r.dropped} | ${fmt(r.connectS, 1)} | ${mb(r.rssBefore)} | ${mb(r.rssAfter)} | ${fmt(kbPerConn(r), 2)} | ${fmt(r.idleCpuPct, 1)} |`);
  }
  return lines.join('\n');
}

/** A scenario's hub against two nodes (hub-cluster) and against the previous build (hub-b), where they ran. */
function acrossBuildsAndNodes(rows: Row[], hub: Row): string[] {
  const out: string[] = [];
  const key = hub.scenario.key;
  const title = hub.scenario.title;
  const cpu = (r: Row): number => usPerMsg(r, BROKER_PROCS);
  const p99 = (r: Row): string => ms(r.latency?.p99Us);
  const cluster = median(rows, 'hub-cluster', key);
  if (cluster !== undefined) {
    const x = cpu(cluster) / cpu(hub);
    out.push(`- ${title}: across two nodes ${fmt(cpu(cluster), 1)} µs broker CPU per message (both nodes) against ${fmt(cpu(hub), 1)} µs on one = ${fmt(x, 2)}x (target <= ${TARGETS.clusterCpuX}x): ${x <= TARGETS.clusterCpuX ? 'MET' : 'MISSED'};`
      + (hub.scenario.kind === 'throughput' ? ` ${fmt(rate(cluster))} msg/s against ${fmt(rate(hub))}` : ` p99 ${p99(cluster)} ms against ${p99(hub)} ms`));
    const [floor, floorPair] = [median(rows, 'floor', key), median(rows, 'floor-cluster', key)];
    if (floor !== undefined && floorPair !== undefined) {
      out.push(`- ${title}: the floor of a crossing, two bare relays through Redis, ${fmt(cpu(floorPair), 1)} µs per message against one bare relay's ${fmt(cpu(floor), 1)} µs = ${fmt(cpu(floorPair) / cpu(floor), 2)}x`);
    }
  }
  const previous = median(rows, 'hub-b', key);
  if (previous !== undefined) {
    const line = `- ${title}: this build against the previous one (hub-b): broker CPU per message ${fmt(cpu(hub), 1)} µs against ${fmt(cpu(previous), 1)} µs`;
    if (hub.scenario.kind === 'throughput') {
      const x = rate(hub) / rate(previous);
      out.push(`${line}; ${fmt(rate(hub))} msg/s against ${fmt(rate(previous))} = ${fmt(x, 2)}x (target >= ${TARGETS.vsPrevious}x): ${x >= TARGETS.vsPrevious ? 'MET' : 'MISSED'}`);
    } else {
      out.push(`${line}; p99 ${p99(hub)} ms against ${p99(previous)} ms`);
    }
  }
  return out;
}

/** One line per target: MET / MISSED, from the median quiet round of each broker. */
export function verdicts(rows: Row[], idle: IdleRow[]): string[] {
  const out: string[] = [];
  const verdict = (ok: boolean): string => (ok ? 'MET' : 'MISSED');
  const keys = [...new Set(rows.map((r) => r.scenario.key))];
  for (const key of keys) {
    const hub = median(rows, 'hub', key);
    const aedes = median(rows, 'aedes', key);
    const mosq = median(rows, 'mosquitto', key);
    const title = rows.find((r) => r.scenario.key === key)!.scenario.title;
    for (const name of ['hub', 'aedes', 'mosquitto'] as const) {
      const crash = rows.find((r) => r.broker === name && r.scenario.key === key && r.crashed !== undefined);
      if (crash !== undefined && median(rows, name, key) === undefined) out.push(`- ${title}: ${name} crashed in every round (${crash.crashed}), so there is no ${name} figure`);
    }
    if (hub === undefined) continue;
    out.push(...acrossBuildsAndNodes(rows, hub));
    if (hub.scenario.kind === 'throughput') {
      // Broker CPU per message too: what one core of each broker can carry, whatever the generators cost.
      const cpu = (o: Row): string => `broker CPU per message: hub ${fmt(usPerMsg(hub, ['broker']), 1)} µs, ${o.broker} ${fmt(usPerMsg(o, ['broker']), 1)} µs`;
      if (aedes) out.push(`- ${title}: hub ${fmt(rate(hub))} msg/s = ${fmt(rate(hub) / rate(aedes), 2)}x Aedes (target >= ${TARGETS.vsAedes}x): ${verdict(rate(hub) >= TARGETS.vsAedes * rate(aedes))} (${cpu(aedes)})`);
      if (mosq) out.push(`- ${title}: hub ${fmt(rate(hub))} msg/s = ${fmt(rate(hub) / rate(mosq), 2)}x Mosquitto (target >= ${TARGETS.vsMosquitto}x): ${verdict(rate(hub) >= TARGETS.vsMosquitto * rate(mosq))} (${cpu(mosq)})`);
    } else if (mosq && hub.latency && mosq.latency) {
      const floor = median(rows, 'floor', key)?.latency;
      const floorNote = floor === undefined ? '' : `; bare Node relay (floor) p99 ${ms(floor.p99Us)} ms`;
      out.push(`- ${title}: hub p99 ${ms(hub.latency.p99Us)} ms, Mosquitto p99 ${ms(mosq.latency.p99Us)} ms (target: no worse): ${verdict(hub.latency.p99Us <= mosq.latency.p99Us)}${floorNote}`);
    }
  }
  const hubIdle = idle.filter((r) => r.broker === 'hub').sort((a, b) => kbPerConn(a) - kbPerConn(b));
  const h = hubIdle[Math.floor((hubIdle.length - 1) / 2)];
  if (h) {
    const floor = idle.find((r) => r.broker === 'floor');
    out.push(`- idle: hub ${fmt(kbPerConn(h), 2)} KB RSS per connection with ${h.connections} clients (target <= ${TARGETS.idleKbPerConn} KB; bare Node socket floor ${floor ? fmt(kbPerConn(floor), 2) : '-'} KB): ${verdict(kbPerConn(h) <= TARGETS.idleKbPerConn && h.failed === 0)}`);
    for (const other of ['hub-cluster', 'hub-b'] as const) {
      const o = idle.find((r) => r.broker === other);
      if (o) out.push(`- idle: ${other === 'hub-cluster' ? 'a node of two (hub-cluster)' : 'the previous build (hub-b)'} ${fmt(kbPerConn(o), 2)} KB RSS per connection with ${o.connections} clients, idle CPU ${fmt(o.idleCpuPct, 1)} % against ${fmt(h.idleCpuPct, 1)} %`);
    }
  }
  return out;
}
