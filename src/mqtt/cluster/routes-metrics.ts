/** Prometheus metrics of the routes and forwards between nodes (per node), read at each scrape. */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ClusterRoutes } from './routes-redis.js';

export function registerClusterMetrics(registry: Registry, cluster: ClusterRoutes): void {
  const registers = [registry];
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({ name, help, registers, collect() { this.set(read()); } });
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({ name, help, registers, collect() { this.reset(); this.inc(read()); } });
  gauge('cloudrest_mqtt_routes_local', 'Distinct MQTT filters (shared groups included) this node\'s sessions subscribe to, published to the other nodes', () => cluster.localRoutes);
  gauge('cloudrest_mqtt_routes_remote', 'Routes (node, filter) of the other nodes known to this node', () => cluster.remoteRoutes);
  counter('cloudrest_mqtt_forwarded_out_total', 'MQTT messages sent to another node (one per node per message)', () => cluster.stats.forwardedOut);
  counter('cloudrest_mqtt_forwarded_in_total', 'MQTT messages received from other nodes', () => cluster.stats.forwardedIn);
  counter('cloudrest_mqtt_forward_failed_total', 'MQTT forwards to another node that Redis did not take', () => cluster.stats.forwardFailed);
  counter('cloudrest_mqtt_forwards_unconfirmed_total', 'MQTT QoS 1/2 forwards another node did not confirm it stored (dead, unreachable, or past the timeout); their publishers got 0x80 (5.0) or a closed connection (3.1.1)', () => cluster.stats.unconfirmed);
  counter('cloudrest_mqtt_publishes_refused_cluster_total', 'MQTT publishes refused because Redis was unreachable (routes unknown)', () => cluster.stats.refused);
}
