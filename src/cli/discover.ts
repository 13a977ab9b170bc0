import { createSocket } from 'node:dgram';
import makeMdns from 'multicast-dns';
import type { Answer, Packet } from 'dns-packet';
import { SERVICE_TYPE } from '../agent/discovery/mdns-records.js';
import { QUERY_TEXT, parseAnswer } from '../agent/discovery/udp-text.js';
import { discoverOptions, type DiscoverConfig } from '../config/discover-options.js';
import { helpText, loadConfig } from '../config/load.js';

export const DISCOVER_USAGE = 'cloudrest discover [--timeout S] [--broadcast-address A] [--json]';
export const discoverHelp = (): string => helpText(DISCOVER_USAGE, discoverOptions);

/** One device found on the LAN, merged over both methods by its REST API URL. */
export interface FoundDevice {
  url: string;
  name: string | null;
  id: string | null;
  mac: string | null;
  /** Who answered from where. */
  address: string | null;
  methods: Array<'udp' | 'mdns'>;
}

/** Answers kept; a LAN with more devices than this is listed in part. */
const MAX_DEVICES = 1024;
/** An mDNS query goes out again at this interval while listening (answers may be lost). */
const MDNS_REQUERY_MS = 1000;

/**
 * `cloudrest discover`: finds cloudrest agents on the LAN by both methods at once, the seed's UDP
 * broadcast (port 15800, answers on 15900) and mDNS / DNS-SD (`_cloudrest._tcp`), and lists them merged.
 */
export async function runDiscover(argv: string[], out: (s: string) => void): Promise<void> {
  const { config } = loadConfig(discoverOptions, { argv });
  const found = await discover(config);
  if (config.json) return out(JSON.stringify(found));
  if (found.length === 0) return out(`no devices answered within ${config.timeout} s`);
  const rows = found.map((d) => [d.name ?? '-', d.id ?? '-', d.url, d.mac ?? '-', d.methods.join('+')]);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...[['NAME', 'ID', 'URL', 'MAC'][i]!, ...rows.map((r) => r[i]!)].map((s) => s.length)));
  out(['NAME', 'ID', 'URL', 'MAC', 'FOUND BY'].map((h, i) => (i < 4 ? h.padEnd(widths[i]!) : h)).join('  '));
  for (const r of rows) out(r.map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c)).join('  '));
}

export async function discover(config: DiscoverConfig): Promise<FoundDevice[]> {
  const byUrl = new Map<string, FoundDevice>();
  const add = (url: string, method: 'udp' | 'mdns', fields: Partial<FoundDevice>): void => {
    let d = byUrl.get(url);
    if (!d) {
      if (byUrl.size >= MAX_DEVICES) return;
      d = { url, name: null, id: null, mac: null, address: null, methods: [] };
      byUrl.set(url, d);
    }
    for (const [k, v] of Object.entries(fields)) if (v !== null && v !== undefined) (d as unknown as Record<string, unknown>)[k] ??= v;
    if (!d.methods.includes(method)) d.methods.push(method);
  };
  const stops = [await udpDiscovery(config, add)];
  if (config.mdns) {
    try {
      stops.push(await mdnsDiscovery(config, add));
    } catch (err) {
      // UDP discovery still runs; say why the mDNS half is missing.
      process.stderr.write(`cloudrest discover: mDNS browsing is off: ${(err as Error).message}\n`);
    }
  }
  await new Promise((r) => setTimeout(r, config.timeout * 1000));
  await Promise.all(stops.map((s) => s()));
  return [...byUrl.values()].sort((a, b) => a.url.localeCompare(b.url));
}

type Add = (url: string, method: 'udp' | 'mdns', fields: Partial<FoundDevice>) => void;

async function udpDiscovery(config: DiscoverConfig, add: Add): Promise<() => Promise<void>> {
  const socket = createSocket({ type: 'udp4', reuseAddr: true });
  socket.on('message', (msg, rinfo) => {
    const a = parseAnswer(msg);
    if (a) add(a.url, 'udp', { name: a.name, mac: a.mac, address: rinfo.address });
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(config.discoveryReplyPort, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', () => undefined);
  socket.setBroadcast(true);
  socket.send(QUERY_TEXT, config.discoveryPort, config.broadcastAddress);
  return () => new Promise((r) => socket.close(() => r()));
}

async function mdnsDiscovery(config: DiscoverConfig, add: Add): Promise<() => Promise<void>> {
  const mdns = makeMdns(config.mdnsInterface ? { interface: config.mdnsInterface } : {});
  mdns.on('warning', () => undefined);
  await new Promise<void>((resolve, reject) => {
    mdns.once('ready', resolve);
    mdns.once('error', reject);
  });
  mdns.on('error', () => undefined);
  mdns.on('response', (p: Packet) => {
    const records = [...(p.answers ?? []), ...(p.additionals ?? [])] as Answer[];
    for (const r of records) {
      if (r.type !== 'TXT' || !r.name.toLowerCase().endsWith(`.${SERVICE_TYPE}`)) continue;
      const txt = txtObject(r.data);
      const srv = records.find((x) => x.type === 'SRV' && x.name === r.name);
      const host = srv && srv.type === 'SRV' ? srv.data.target : undefined;
      const a = records.find((x) => x.type === 'A' && x.name === host);
      if (txt.api) add(txt.api, 'mdns', { name: txt.name ?? null, id: txt.id ?? null, address: a && a.type === 'A' ? a.data : null });
    }
  });
  const query = (): void => mdns.query({ questions: [{ name: SERVICE_TYPE, type: 'PTR' }] });
  query();
  const t = setInterval(query, MDNS_REQUERY_MS);
  return () => {
    clearInterval(t);
    return new Promise((r) => mdns.destroy(() => r()));
  };
}

/** TXT strings `key=value` (RFC 6763 §6.3) as an object; the first of a repeated key wins. */
function txtObject(data: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const items = Array.isArray(data) ? data : [data];
  for (const item of items) {
    const s = Buffer.isBuffer(item) ? item.toString('utf8') : typeof item === 'string' ? item : '';
    const eq = s.indexOf('=');
    if (eq > 0 && !(s.slice(0, eq).toLowerCase() in out)) out[s.slice(0, eq).toLowerCase()] = s.slice(eq + 1);
  }
  return out;
}
