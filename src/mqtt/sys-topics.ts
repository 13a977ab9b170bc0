/**
 * `$SYS/broker/...` statistics topics, published by the server as retained QoS 0 messages, with
 * Mosquitto's names where Mosquitto has one (mosquitto.conf(5), "sys_interval"), so dashboards and
 * scripts written for Mosquitto read them unchanged. Only topics whose value changed since the last
 * round are published again. The work is per interval, never per message.
 *
 * Filters starting with a wildcard never match `$SYS/` ([MQTT-4.7.2-1]), so only a client that asks for
 * `$SYS/...` gets them; clients cannot publish under `$SYS/` (handlers/publish.ts).
 *
 *   const sys = startSysTopics(broker, { intervalMs: 10_000, version: '1.2.0' });
 *   ...
 *   sys.stop();
 */
import type { Broker } from './broker.js';

export interface SysTopicsOptions {
  /** How often values are read and the changed ones published, in milliseconds. Default 10,000 (Mosquitto's sys_interval). */
  intervalMs?: number;
  /** Published once as `$SYS/broker/version`, after "cloudrest version ". */
  version: string;
  /** Cluster: the cluster's totals, published as `$SYS/broker/cluster/...` beside this node's own values; undefined while unknown. */
  cluster?: () => ClusterTotals | undefined;
  /** Clock, in ms since epoch; tests replace it. Default Date.now. */
  now?: () => number;
}

export interface ClusterTotals {
  /** Live nodes. */
  nodes: number;
  /** Connected clients summed over the live nodes. */
  connected: number;
}

export interface SysTopics {
  /** Stops publishing. The retained values stay as they are. */
  stop(): void;
}

const PREFIX = '$SYS/broker/';

/** Starts publishing at once, then every `intervalMs`. */
export function startSysTopics(broker: Broker, options: SysTopicsOptions): SysTopics {
  const intervalMs = options.intervalMs ?? 10_000;
  if (!Number.isInteger(intervalMs) || intervalMs < 1) throw new RangeError(`intervalMs must be a positive integer, got ${String(intervalMs)}`);
  const now = options.now ?? Date.now;
  const startedAt = now();
  const last = new Map<string, string>();

  const round = (): void => {
    // Our own retained topics (every one published stays: clients cannot publish under `$SYS/`) are not counted.
    const values = sysValues(broker, options.version, Math.floor((now() - startedAt) / 1000), last.size);
    const totals = options.cluster?.();
    if (totals !== undefined) values.push(['cluster/nodes', String(totals.nodes)], ['cluster/clients/connected', String(totals.connected)]);
    for (const [name, value] of values) {
      if (last.get(name) === value) continue;
      last.set(name, value);
      // QoS 0 and a topic known to be valid: nothing to wait for, nothing to catch.
      void broker.publish({ topic: PREFIX + name, payload: value, retain: true });
    }
  };
  round();
  const timer = setInterval(round, intervalMs).unref();
  return {
    stop() {
      clearInterval(timer);
    },
  };
}

/** Every value, as [topic after `$SYS/broker/`, payload]. */
export function sysValues(broker: Broker, version: string, uptimeS: number, ownRetained = 0): Array<[string, string]> {
  const s = broker.stats;
  const sessions = broker.sessions;
  const out: Array<[string, string]> = [
    ['version', `cloudrest version ${version}`],
    ['uptime', `${uptimeS} seconds`],
    ['clients/connected', String(s.connections)],
    // Mosquitto: connected plus disconnected clients with a persistent session.
    ['clients/total', String(sessions)],
    ['clients/disconnected', String(Math.max(0, sessions - s.connections))],
    ['clients/connections', String(s.connectionsTotal)],
    // PUBLISH packets (the server's own `$SYS/` messages are not counted as received).
    ['messages/received', String(s.messagesIn[0] + s.messagesIn[1] + s.messagesIn[2])],
    ['messages/sent', String(s.messagesOut[0] + s.messagesOut[1] + s.messagesOut[2])],
    ['messages/dropped', String(s.dropped)],
    ['messages/expired', String(s.expired)],
    ['messages/inflight', String(s.inflight)],
    ['messages/queued', String(s.queued)],
    // Every byte read from and written to client transports.
    ['bytes/received', String(s.wireBytesIn)],
    ['bytes/sent', String(s.wireBytesOut)],
    ['retained messages/count', String(Math.max(0, broker.retainedCount - ownRetained))],
    ['subscriptions/count', String(broker.subscriptions)],
  ];
  for (const qos of [0, 1, 2] as const) {
    out.push([`messages/received/qos${qos}`, String(s.messagesIn[qos])]);
    out.push([`messages/sent/qos${qos}`, String(s.messagesOut[qos])]);
  }
  return out;
}
