import type { ConfigOf, OptionTable } from './option.js';

/** Every option of `cloudrest hub`. Units are in the names. */
export const hubOptions = {
  data: { type: 'string', default: './data', description: 'Folder for the SQLite database and state' },
  host: { type: 'string', default: '0.0.0.0', description: 'Address the HTTP and tunnel listeners bind' },
  httpPort: { type: 'int', default: 8080, min: 0, max: 65535, description: 'HTTP API, SSE and WebSocket tunnel (/v1/agent) port; 0 = any free port' },
  tunnelPort: { type: 'int', default: 7443, min: 0, max: 65535, description: 'Raw TCP (or TLS with --tls-cert/--tls-key) agent tunnel port; 0 = any free port' },
  tunnelTls: { type: 'bool', default: false, description: 'Serve the tunnel port over TLS (needs --tls-cert and --tls-key)' },
  httpTls: { type: 'bool', default: false, description: 'Serve the HTTP port over HTTPS (needs --tls-cert and --tls-key)' },
  tlsCert: { type: 'string', description: 'PEM certificate file for TLS listeners' },
  tlsKey: { type: 'string', description: 'PEM private key file for TLS listeners' },
  publicUrl: { type: 'string', description: 'URL clients use to reach this hub (shown in the banner and links)' },
  logLevel: { type: 'string', default: 'info', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], description: 'Log level' },
  demo: { type: 'bool', default: false, description: 'Create a demo user and run a simulated demo device (npm start does this)' },
  maxRequestBodyBytes: { type: 'int', default: 256 * 1024 * 1024, min: 0, description: 'Largest relayed request body' },
  maxInflightPerDevice: { type: 'int', default: 256, min: 1, description: 'Relayed requests in flight per device before queueing' },
  maxQueuedPerDevice: { type: 'int', default: 2048, min: 0, description: 'Relayed requests waiting per device before 429' },
  requestTimeoutMs: { type: 'int', default: 30_000, min: 1, description: 'Time a device has to start answering a relayed request (504 after)' },
  tunnelMaxFrameBytes: { type: 'int', default: 65_536, min: 1024, max: 16 * 1024 * 1024, description: 'Largest tunnel frame payload the hub accepts' },
  tunnelWindowBytes: { type: 'int', default: 262_144, min: 1024, description: 'Per-stream flow-control window on the tunnel' },
  tunnelPingIntervalMs: { type: 'int', default: 20_000, min: 100, description: 'How often agents are asked to ping' },
  tunnelIdleTimeoutMs: { type: 'int', default: 60_000, min: 200, description: 'A tunnel silent this long is closed' },
  tunnelHandshakeTimeoutMs: { type: 'int', default: 10_000, min: 100, description: 'Time an agent has to send its HELLO' },
  maxTunnels: { type: 'int', default: 100_000, min: 1, description: 'Most agent tunnels open at once' },
  cacheMaxBytes: { type: 'int', default: 64 * 1024 * 1024, min: 0, description: 'Memory for cached GET responses (0 disables the cache)' },
  cacheMaxEntryBytes: { type: 'int', default: 1024 * 1024, min: 0, description: 'Largest response body that is cached' },
  eventHistory: { type: 'int', default: 256, min: 0, description: 'Notifications kept per device for Last-Event-ID resume' },
  sseHeartbeatMs: { type: 'int', default: 15_000, min: 100, description: 'Interval of SSE heartbeat comments' },
  maxSseClients: { type: 'int', default: 10_000, min: 1, description: 'Most SSE streams open at once' },
  tokenTtlMs: { type: 'int', default: 24 * 3600_000, min: 1000, description: 'Life of an access token' },
  rememberTokenTtlMs: { type: 'int', default: 30 * 24 * 3600_000, min: 1000, description: 'Life of an access token asked with remember: true' },
  shutdownGraceMs: { type: 'int', default: 10_000, min: 0, description: 'Time in-flight requests get to finish on shutdown' },
} as const satisfies OptionTable;

export type HubConfig = ConfigOf<typeof hubOptions>;
