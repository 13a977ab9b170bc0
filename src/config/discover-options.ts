import type { ConfigOf, OptionTable } from './option.js';

/** Every option of `cloudrest discover`. */
export const discoverOptions = {
  timeout: { type: 'int', default: 3, min: 1, max: 3600, description: 'Seconds to listen for answers' },
  broadcastAddress: { type: 'string', default: '255.255.255.255', description: 'Where the UDP discovery broadcast goes (a subnet broadcast such as 192.168.1.255, or 127.255.255.255 to test on one machine)' },
  discoveryPort: { type: 'int', default: 15_800, min: 1, max: 65535, description: 'UDP port agents listen on for discovery' },
  discoveryReplyPort: { type: 'int', default: 15_900, min: 1, max: 65535, description: 'UDP port the answers come back to' },
  mdns: { type: 'bool', default: true, description: 'Also browse mDNS / DNS-SD for _cloudrest._tcp; --no-mdns for UDP broadcast only' },
  mdnsInterface: { type: 'string', description: 'IPv4 address of the one interface mDNS uses (all interfaces otherwise)' },
  json: { type: 'bool', default: false, description: 'Print JSON' },
} as const satisfies OptionTable;

export type DiscoverConfig = ConfigOf<typeof discoverOptions>;
