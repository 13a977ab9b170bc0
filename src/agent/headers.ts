import type { OutgoingHttpHeaders } from 'node:http';
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
 * Headers of a relayed request as Node wants them for the device's REST service: hop-by-hop fields
 * removed, Host set to the service's own host, repeated fields kept (as arrays).
 */
export function requestHeadersForService(headers: HeaderList, host: string): OutgoingHttpHeaders {
  const listed = connectionListed(headers.filter(([k]) => k.toLowerCase() === 'connection').map(([, v]) => v));
  const out: Record<string, string | string[]> = {};
  for (const [rawName, value] of headers) {
    const name = rawName.toLowerCase();
    if (HOP_BY_HOP.has(name) || listed.has(name) || name === 'host') continue;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [prev, value];
  }
  out.host = host;
  return out;
}

/**
 * The service's response headers for the RESPONSE frame: lower-case [name, value] pairs in order, a
 * multi-valued field (set-cookie) repeated, hop-by-hop fields removed (the hub frames the body itself).
 */
export function responseHeadersForHub(rawHeaders: readonly string[]): HeaderList {
  const connection: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === 'connection') connection.push(rawHeaders[i + 1]!);
  const listed = connectionListed(connection);
  const out: HeaderList = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || listed.has(name)) continue;
    out.push([name, rawHeaders[i + 1]!]);
  }
  return out;
}
