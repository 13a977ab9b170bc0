import type { ConfigOf, OptionTable } from './option.js';

/** Every option of `cloudrest agent provision` (seed 002 "Device Factory Provisioning"). */
export const provisionOptions = {
  factory: { type: 'string', required: true, description: "The hub's HTTP(S) URL for factory provisioning, e.g. https://hub.example.com" },
  factoryKey: { type: 'string', required: true, description: 'Factory key from `cloudrest factory-keys add` (prefer CLOUDREST_FACTORY_KEY: it keeps the key out of ps)' },
  idFile: { type: 'string', required: true, description: 'File holding the device id, e.g. a flash serial under /sys; when absent, a new id is made and written there' },
  out: { type: 'string', required: true, description: 'Folder for the identity file and credentials.json (created mode 0700; files mode 0600)' },
  name: { type: 'string', description: 'Device name at the hub [default: the device id]' },
  email: { type: 'string', description: "Owner's email (otherwise taken from the device's GET /device once it connects)" },
  hub: { type: 'list', description: 'Tunnel URL(s) the agent will use, written into the credentials [default: the factory URL as ws(s)://host:port/v1/agent]' },
  tlsCa: { type: 'string', description: 'PEM CA file trusted for an https:// factory URL (system CAs otherwise)' },
  timeoutMs: { type: 'int', default: 15_000, min: 100, description: 'Time the hub has to answer' },
} as const satisfies OptionTable;

export type ProvisionConfig = ConfigOf<typeof provisionOptions>;
