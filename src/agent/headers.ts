import type { HeaderList } from '../relay/protocol/heads.js';

/** RFC 9110 §7.6.1: connection-specific fields a proxy must not forward. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings']);

/** The field names a Connection header lists (RFC 9110 §7.6.1: they are hop-by-hop too). */
function connectionListed(values: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const v of values) for (const t of v.split(',')) if (t.trim()) out.add(t.trim().toLowerCase());
  return out;
}

/**
 * Headers of a relayed request for the device's REST service, as a flat [name, value, ...] list:
 * hop-by-hop fields removed, Host set to the service's own host, repeated fields kept in order.
 */
export function requestHeadersForService(headers: HeaderList, host: string): string[] {
  let listed: Set<string> | undefined;
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i]!;
    if (name.toLowerCase() === 'connection') (listed ??= new Set()).add(value);
  }
  if (listed) listed = connectionListed(listed);
  const out: string[] = [];
  for (let i = 0; i < headers.length; i++) {
    const [rawName, value] = headers[i]!;
    const name = rawName.toLowerCase();
    if (HOP_BY_HOP.has(name) || listed?.has(name) || name === 'host') continue;
    out.push(name, value);
  }
  out.push('host', host);
  return out;
}

/**
 * The service's response headers for the RESPONSE frame: lower-case [name, value] pairs in order, a
 * multi-valued field (set-cookie) repeated, hop-by-hop fields removed (the hub frames the body itself).
 * Takes the raw list as an HTTP client gives it: names and values alternating, as latin1 buffers
 * (undici) or strings.
 */
export function responseHeadersForHub(raw: ReadonlyArray<Buffer | string>): HeaderList {
  const out: HeaderList = [];
  let connection: string[] | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = latin1(raw[i]!).toLowerCase();
    const value = latin1(raw[i + 1]!);
    if (name === 'connection') (connection ??= []).push(value);
    if (HOP_BY_HOP.has(name)) continue;
    out.push([name, value]);
  }
  if (!connection) return out;
  const listed = connectionListed(connection);
  return out.filter(([name]) => !listed.has(name));
}

function latin1(v: Buffer | string): string {
  return typeof v === 'string' ? v : v.toString('latin1');
}
