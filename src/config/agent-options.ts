import type { ConfigOf, OptionTable } from './option.js';
import { ConfigError } from './load.js';
import { envName } from './option.js';

/** Every option of `cloudrest agent`. */
export const agentOptions = {
  hub: { type: 'list', description: 'Hub URL(s): tcp://, tls://, ws:// or wss://; repeat or comma-separate for several (required unless --credentials gives them)' },
  alsoHub: { type: 'list', default: [], description: 'Hub URL to keep another, independent connection to (a LAN hub beside a cloud hub); repeatable; ID:SECRET@ in the URL for other credentials' },
  deviceId: { type: 'string', description: 'Device id (from `cloudrest devices add`; required unless --credentials gives it)' },
  secret: { type: 'string', description: 'Device secret (from `cloudrest devices add`; required unless --credentials gives it)' },
  credentials: { type: 'string', description: 'Folder written by `cloudrest agent provision`: device id, secret and hub URLs (flags above win over it)' },
  api: { type: 'string', default: 'http://127.0.0.1:80', description: "Base URL of the device's local REST service" },
  infoPath: { type: 'string', default: '/device', description: 'Path of the device-info JSON on the REST service' },
  tlsCa: { type: 'string', description: 'PEM CA file trusted for tls:// and wss:// hubs (system CAs otherwise)' },
  concurrency: { type: 'int', default: 64, min: 1, max: 4096, description: 'Relayed requests sent to the REST service at once' },
  notifyPipe: { type: 'string', description: 'Named pipe (created with mkfifo) whose lines become notifications' },
  notifySocket: { type: 'string', description: 'Unix socket path whose lines become notifications' },
  notifyPort: { type: 'int', min: 0, max: 65535, description: 'Local port for POST /notify (127.0.0.1 only); 0 = any free port' },
  notifyQueue: { type: 'int', default: 1000, min: 1, description: 'Notifications kept while the hub is unreachable' },
  maxNotificationBytes: { type: 'int', default: 65_000, min: 16, max: 16 * 1024 * 1024 - 4, description: "Longest notification line (must fit the hub's frame limit, 64 KiB by default)" },
  backoffMinMs: { type: 'int', default: 500, min: 1, description: 'First reconnect delay' },
  backoffMaxMs: { type: 'int', default: 30_000, min: 1, description: 'Longest reconnect delay' },
  maxFrameBytes: { type: 'int', default: 65_536, min: 1024, max: 16 * 1024 * 1024, description: 'Largest tunnel frame payload the agent accepts' },
  windowBytes: { type: 'int', default: 262_144, min: 1024, description: 'Per-stream flow-control window' },
  requestTimeoutMs: { type: 'int', default: 60_000, min: 1, description: 'Time the REST service has to answer' },
  lanPort: { type: 'int', min: 0, max: 65535, description: "Serve the device's REST API on the LAN on this port, to clients with the hub's tokens (checked offline); 0 = any free port" },
  lanHost: { type: 'string', default: '0.0.0.0', description: 'Address the LAN port binds' },
  lanTlsCert: { type: 'string', description: 'PEM certificate file: serve the LAN port over HTTPS (with --lan-tls-key)' },
  lanTlsKey: { type: 'string', description: 'PEM private key file for --lan-tls-cert' },
  stateDir: { type: 'string', default: './cloudrest-agent-state', description: "Folder for what the agent keeps across reboots: the hub's token keys and revoked tokens (LAN access)" },
  lanMaxRevoked: { type: 'int', default: 10_000, min: 16, max: 1_000_000, description: 'Revoked tokens remembered for LAN access (beyond it, the soonest-expiring tokens are refused)' },
  discovery: { type: 'bool', default: false, description: 'Answer LAN discovery: UDP broadcast (seed 002) and mDNS / DNS-SD _cloudrest._tcp' },
  discoveryPort: { type: 'int', default: 15_800, min: 1, max: 65535, description: 'UDP port where discovery broadcasts are received' },
  discoveryReplyPort: { type: 'int', default: 15_900, min: 1, max: 65535, description: "UDP port of the asker that discovery answers go to" },
  mdns: { type: 'bool', default: true, description: 'With --discovery, also advertise over mDNS / DNS-SD; --no-mdns for UDP broadcast only' },
  mdnsInterface: { type: 'string', description: 'IPv4 address of the one interface mDNS uses (all interfaces otherwise)' },
  logLevel: { type: 'string', default: 'info', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], description: 'Log level' },
} as const satisfies OptionTable;

/** The options as given: id, secret and hubs may still come from a --credentials folder. */
export type AgentOptionValues = ConfigOf<typeof agentOptions>;

/** What the agent runs with: every option, id, secret and hubs settled. */
export type AgentConfig = Omit<AgentOptionValues, 'hub' | 'deviceId' | 'secret'> & {
  readonly hub: readonly string[];
  readonly deviceId: string;
  readonly secret: string;
};

const missing = (key: 'hub' | 'deviceId' | 'secret', flag: string): ConfigError =>
  new ConfigError(`missing required option --${flag} (or ${envName(key)}, or "${key}" in the config file, or a --credentials folder)`);

/**
 * Settles the agent's config: id, secret and hubs from the options, else from the credentials folder
 * (`cloudrest agent provision`). Throws ConfigError naming the first one missing.
 */
export function resolveAgentConfig(o: AgentOptionValues, fromFolder?: { deviceId: string; secret: string; hub: readonly string[] }): AgentConfig {
  const hub = o.hub !== undefined && o.hub.length > 0 ? o.hub : fromFolder?.hub;
  const deviceId = o.deviceId ?? fromFolder?.deviceId;
  const secret = o.secret ?? fromFolder?.secret;
  if (hub === undefined) throw missing('hub', 'hub');
  if (deviceId === undefined) throw missing('deviceId', 'device-id');
  if (secret === undefined) throw missing('secret', 'secret');
  return Object.freeze({ ...o, hub, deviceId, secret });
}
