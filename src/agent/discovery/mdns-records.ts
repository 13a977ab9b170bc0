import type { Answer } from 'dns-packet';

/** DNS-SD service type of a cloudrest agent (RFC 6763 §7). */
export const SERVICE_TYPE = '_cloudrest._tcp.local';
export const SERVICES_META = '_services._dns-sd._udp.local';

export interface ServiceDescription {
  deviceId: string;
  name: string;
  port: number;
  /** The REST API URL (TXT `api`). */
  api: string;
  addresses: string[];
}

/** A DNS label: at most 63 bytes (RFC 1035 §2.3.4), no dots (the encoder splits on them). */
function label(s: string): string {
  let out = s.replace(/\./g, '-');
  while (Buffer.byteLength(out, 'utf8') > 63) out = out.slice(0, -1);
  return out;
}

export function instanceName(d: ServiceDescription): string {
  return `${label(`${d.name} (${d.deviceId})`)}.${SERVICE_TYPE}`;
}

export function hostName(d: ServiceDescription): string {
  return `${label(`cloudrest-${d.deviceId.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`)}.local`;
}

/** TXT strings (RFC 6763 §6): key=value, each at most 255 bytes. */
export function txtStrings(d: ServiceDescription): string[] {
  return [`id=${d.deviceId}`, `name=${d.name}`, `api=${d.api}`].filter((s) => Buffer.byteLength(s, 'utf8') <= 255);
}

/**
 * The records for a question; `additionals` are the records a resolver needs next (RFC 6763 §12).
 * `legacyTtl`: the question came from a legacy querier, whose answer caps TTLs (RFC 6762 §6.7).
 * TTLs as RFC 6762 §10 recommends: 120 s for records with a host name, 75 minutes for the others.
 */
export function recordsFor(d: ServiceDescription, name: string, type: string, legacyTtl?: number): { answers: Answer[]; additionals: Answer[] } {
  const ttl = (t: number): number => (legacyTtl === undefined ? t : Math.min(t, legacyTtl));
  // RFC 6762 §6.7 and §10.2: no cache-flush bit in answers to a legacy (one-shot) querier.
  const flush = legacyTtl === undefined;
  const inst = instanceName(d);
  const host = hostName(d);
  const ptr: Answer = { name: SERVICE_TYPE, type: 'PTR', ttl: ttl(4500), data: inst };
  const srv: Answer = { name: inst, type: 'SRV', ttl: ttl(120), flush, data: { port: d.port, target: host, priority: 0, weight: 0 } };
  const txt: Answer = { name: inst, type: 'TXT', ttl: ttl(4500), flush, data: txtStrings(d) };
  const a: Answer[] = d.addresses.map((ip) => ({ name: host, type: 'A', ttl: ttl(120), flush, data: ip }));
  const q = name.toLowerCase();
  const any = type === 'ANY';
  if (q === SERVICE_TYPE.toLowerCase() && (type === 'PTR' || any)) return { answers: [ptr], additionals: [srv, txt, ...a] };
  if (q === SERVICES_META.toLowerCase() && (type === 'PTR' || any)) return { answers: [{ name: SERVICES_META, type: 'PTR', ttl: ttl(4500), data: SERVICE_TYPE }], additionals: [] };
  if (q === inst.toLowerCase()) {
    const answers = [...(type === 'SRV' || any ? [srv] : []), ...(type === 'TXT' || any ? [txt] : [])];
    return { answers, additionals: answers.length > 0 ? a : [] };
  }
  if (q === host.toLowerCase() && (type === 'A' || any)) return { answers: a, additionals: [] };
  return { answers: [], additionals: [] };
}

/** Every record, for announcements (RFC 6762 §8.3) and goodbyes (TTL 0, §10.1). */
export function allRecords(d: ServiceDescription, ttl?: number): Answer[] {
  const r = [...recordsFor(d, SERVICE_TYPE, 'PTR').answers, ...recordsFor(d, SERVICE_TYPE, 'PTR').additionals];
  return ttl === undefined ? r : r.map((x) => ({ ...x, ttl }));
}
