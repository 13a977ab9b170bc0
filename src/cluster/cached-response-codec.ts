/**
 * A CachedResponse as bytes, for the response cache in Redis: fixed fields, then length-prefixed
 * strings, then the body as it is (no JSON, no base64: a hit costs one copy of the body).
 */
import type { CachedResponse } from '../relay/cached-response.js';

const NULL_STRING = 0xffffffff;
const FIXED_BYTES = 2 + 8 * 5 + 1;

export function encodeCachedResponse(e: CachedResponse): Buffer {
  const strings: Array<string | null> = [];
  if (e.etag !== null) strings.push(e.etag);
  for (const [k, v] of e.headers) strings.push(k, v);
  for (const [k, v] of e.vary) strings.push(k, v);
  let size = FIXED_BYTES + 8 + e.body.length;
  const encoded = strings.map((s) => (s === null ? null : Buffer.from(s, 'utf8')));
  for (const b of encoded) size += 4 + (b?.length ?? 0);
  const out = Buffer.allocUnsafe(size);
  let at = out.writeUInt16BE(e.status, 0);
  for (const n of [e.requestTime, e.responseTime, e.initialAgeMs, e.freshnessMs, e.lastModified ?? Number.NaN]) at = out.writeDoubleBE(n, at);
  at = out.writeUInt8((e.authorizedReuse ? 1 : 0) | (e.etag !== null ? 2 : 0), at);
  at = out.writeUInt32BE(e.headers.length, at);
  at = out.writeUInt32BE(e.vary.length, at);
  for (const b of encoded) {
    if (b === null) {
      at = out.writeUInt32BE(NULL_STRING, at);
      continue;
    }
    at = out.writeUInt32BE(b.length, at);
    at += b.copy(out, at);
  }
  e.body.copy(out, at);
  return out;
}

/** The response `bytes` encodes; `offset` skips what the caller put before it. Throws on malformed bytes. */
export function decodeCachedResponse(bytes: Buffer, offset = 0): CachedResponse {
  let at = offset;
  const need = (n: number): void => {
    if (at + n > bytes.length) throw new RangeError('truncated cache entry');
  };
  need(FIXED_BYTES + 8);
  const status = bytes.readUInt16BE(at);
  at += 2;
  const numbers: number[] = [];
  for (let i = 0; i < 5; i++, at += 8) numbers.push(bytes.readDoubleBE(at));
  const flags = bytes.readUInt8(at++);
  const headerCount = bytes.readUInt32BE(at);
  const varyCount = bytes.readUInt32BE(at + 4);
  at += 8;
  const str = (): string | null => {
    need(4);
    const len = bytes.readUInt32BE(at);
    at += 4;
    if (len === NULL_STRING) return null;
    need(len);
    const s = bytes.toString('utf8', at, at + len);
    at += len;
    return s;
  };
  const etag = flags & 2 ? str() : null;
  const headers: Array<[string, string]> = [];
  for (let i = 0; i < headerCount; i++) headers.push([str() ?? '', str() ?? '']);
  const vary: Array<[string, string | null]> = [];
  for (let i = 0; i < varyCount; i++) vary.push([str() ?? '', str()]);
  const [requestTime, responseTime, initialAgeMs, freshnessMs, lastModified] = numbers as [number, number, number, number, number];
  return {
    status,
    headers,
    body: bytes.subarray(at),
    requestTime,
    responseTime,
    initialAgeMs,
    freshnessMs,
    etag,
    lastModified: Number.isNaN(lastModified) ? null : lastModified,
    vary,
    authorizedReuse: (flags & 1) !== 0,
  };
}
