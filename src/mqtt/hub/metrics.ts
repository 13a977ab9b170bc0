/**
 * The broker's Prometheus metrics, read from its stats when /metrics is scraped: nothing is counted per
 * message here (the broker's own counters are plain numbers).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AddressConnections } from '../../core/address-connections.js';
import type { Broker } from '../broker.js';

export function registerMqttMetrics(registry: Registry, broker: Broker, perAddress: AddressConnections): void {
  const registers = [registry];
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({ name, help, registers, collect() { this.set(read()); } });
  gauge('cloudrest_mqtt_connections', 'Open MQTT connections that completed CONNECT', () => broker.connections);
  gauge('cloudrest_mqtt_sessions', 'MQTT sessions in memory, connected or not', () => broker.sessions);
  gauge('cloudrest_mqtt_subscriptions', 'MQTT subscriptions', () => broker.subscriptions);
  gauge('cloudrest_mqtt_retained_messages', 'Retained MQTT messages', () => broker.retainedCount);
  gauge('cloudrest_mqtt_retained_in_memory', 'Retained MQTT messages held in this process\'s memory (0 with a PostgreSQL store: they are read from the database, none loaded at start; the broker\'s own $SYS ones aside)', () => broker.retainedInMemory);
  gauge('cloudrest_mqtt_retained_bytes', 'Bytes charged for retained MQTT messages (topics, payloads, properties), in memory or on disk', () => broker.retainedBytes);
  gauge('cloudrest_mqtt_inflight_messages', 'QoS 1/2 messages sent to clients and not yet acknowledged', () => broker.inflight);
  gauge('cloudrest_mqtt_queued_messages', 'Messages waiting in MQTT session queues', () => broker.queued);

  // Counters mirror the broker's: reset and set to its totals at each scrape.
  const counter = (name: string, help: string, read: (c: Counter<'qos'>) => void, labelNames: Array<'qos'> = []) =>
    new Counter({ name, help, labelNames, registers, collect() { this.reset(); read(this); } });
  const perQos = (name: string, help: string, pick: (s: Broker['stats']) => readonly number[]) =>
    counter(name, help, (c) => {
      const v = pick(broker.stats);
      for (let q = 0; q < 3; q++) c.inc({ qos: String(q) }, v[q]!);
    }, ['qos']);
  perQos('cloudrest_mqtt_messages_received_total', 'PUBLISH packets received by the broker (and server publishes), by QoS', (s) => s.messagesIn);
  perQos('cloudrest_mqtt_messages_sent_total', 'PUBLISH packets sent to MQTT clients, by QoS', (s) => s.messagesOut);
  perQos('cloudrest_mqtt_payload_bytes_received_total', 'Payload bytes of received PUBLISH packets, by QoS', (s) => s.bytesIn);
  perQos('cloudrest_mqtt_payload_bytes_sent_total', 'Payload bytes of sent PUBLISH packets, by QoS', (s) => s.bytesOut);
  counter('cloudrest_mqtt_connections_total', 'MQTT connections accepted since start', (c) => c.inc(broker.stats.connectionsTotal));
  counter('cloudrest_mqtt_messages_dropped_total', 'MQTT messages not delivered: queue full or larger than the client accepts', (c) => c.inc(broker.stats.dropped));
  counter('cloudrest_mqtt_messages_dropped_owner_quota_total', 'Of the dropped MQTT messages: those dropped because their device or user had --mqtt-max-queued-bytes-per-owner queued', (c) => c.inc(broker.stats.droppedOwnerQuota));
  counter('cloudrest_mqtt_sessions_refused_total', 'MQTT CONNECTs refused (0x97 / 3) because their device or user had --mqtt-max-sessions-per-owner sessions', (c) => c.inc(broker.stats.sessionsRefused));
  counter('cloudrest_mqtt_connections_refused_per_address_total', 'MQTT connections closed at accept because their address had --mqtt-max-connections-per-address open', (c) => c.inc(perAddress.refusedTotal));
  counter('cloudrest_mqtt_retained_refused_total', 'Retained MQTT messages refused (or published without being retained) past a retained quota', (c) => c.inc(broker.stats.retainedRefused));
  counter('cloudrest_mqtt_messages_expired_total', 'MQTT messages whose expiry passed while queued', (c) => c.inc(broker.stats.expired));
}
