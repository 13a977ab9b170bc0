import type { IncomingMessage } from 'node:http';
import type { HeaderList } from './protocol/heads.js';

/** RFC 9110 §7.6.1: connection-specific fields a proxy must not forward. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings']);

function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (!value) return undefined;
  return new Set(value.split(',').map((t) => t.trim().toLowerCase()).filter(Boolean));
}

/**
 * The headers to send to the device: the client's, minus hop-by-hop fields, minus the hub's own
 * credentials (the client's access token is for the hub, never for the device), plus X-Forwarded-*.
 */
export function requestHeadersForDevice(req: IncomingMessage, prefix: string, secure: boolean): HeaderList {
  const raw = req.rawHeaders;
  const listed = connectionTokens(req.headers.connection);
  const out: HeaderList = [];
  let xff: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    // `expect`: the hub already answered 100-continue to the client; the body follows regardless.
    if (HOP_BY_HOP.has(name) || listed?.has(name) || name === 'authorization' || name === 'host' || name === 'expect') continue;
    if (name === 'x-forwarded-for') {
      xff = xff ? `${xff}, ${raw[i + 1]!}` : raw[i + 1]!;
      continue;
    }
    if (name === 'x-forwarded-proto' || name === 'x-forwarded-host' || name === 'x-forwarded-prefix') continue;
    out.push([name, raw[i + 1]!]);
  }
  const addr = req.socket.remoteAddress ?? '';
  out.push(['x-forwarded-for', xff ? `${xff}, ${addr}` : addr]);
  out.push(['x-forwarded-proto', secure ? 'https' : 'http']);
  if (req.headers.host) out.push(['x-forwarded-host', req.headers.host]);
  out.push(['x-forwarded-prefix', prefix]);
  return out;
}

/** The device's response headers as a flat [name, value, ...] list for writeHead, minus hop-by-hop. */
export function responseHeadersForClient(headers: HeaderList): string[] {
  let listed: Set<string> | undefined;
  for (const [k, v] of headers) if (k === 'connection') listed = connectionTokens(v);
  const flat: string[] = [];
  for (const [k, v] of headers) {
    if (HOP_BY_HOP.has(k) || listed?.has(k)) continue;
    flat.push(k, v);
  }
  return flat;
}

export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
}
