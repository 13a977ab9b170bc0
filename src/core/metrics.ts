import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The hub's Prometheus metrics, on a registry of its own (several hubs can live in one process in tests). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'cloudrest_process_' });
  const m = {
    registry,
    tunnelConnections: new Gauge({ name: 'cloudrest_tunnel_connections', help: 'Open agent tunnel connections', labelNames: ['transport'], registers: [registry] }),
    devicesOnline: new Gauge({ name: 'cloudrest_devices_online', help: 'Devices with an authenticated tunnel', registers: [registry] }),
    tunnelAuthFailures: new Counter({ name: 'cloudrest_tunnel_auth_failures_total', help: 'Agent connections refused for unknown id or wrong secret', registers: [registry] }),
    tunnelRefused: new Counter({ name: 'cloudrest_tunnel_refused_total', help: 'Agent connections refused or dropped by a connection limit: reason tunnels (--max-tunnels), handshakes (--max-tunnel-handshakes), address (--max-tunnels-per-address), timeout (no HELLO in time)', labelNames: ['reason'] as const, registers: [registry] }),
    tunnelProtocolErrors: new Counter({ name: 'cloudrest_tunnel_protocol_errors_total', help: 'Agent connections closed for protocol violations', registers: [registry] }),
    notifications: new Counter({ name: 'cloudrest_notifications_total', help: 'Device notifications received', registers: [registry] }),
    relayRequests: new Counter({ name: 'cloudrest_relay_requests_total', help: 'Relayed requests by response status', labelNames: ['status', 'cache'], registers: [registry] }),
    relayDuration: new Histogram({
      name: 'cloudrest_relay_duration_seconds',
      help: 'Time from request to response head for relayed requests',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    relayBytes: new Counter({ name: 'cloudrest_relay_bytes_total', help: 'Relayed body bytes', labelNames: ['direction'], registers: [registry] }),
    sseClients: new Gauge({ name: 'cloudrest_sse_clients', help: 'Open server-sent-event streams', registers: [registry] }),
    httpConnections: new Gauge({ name: 'cloudrest_http_connections', help: 'Open client HTTP connections', registers: [registry] }),
  };
  return m;
}

export type HubMetrics = ReturnType<typeof createMetrics>;
