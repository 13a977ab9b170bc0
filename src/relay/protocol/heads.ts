import { ProtocolError } from './frames.js';

/**
 * Binary encodings of an HTTP request head (REQUEST frame) and response head (RESPONSE frame).
 *
 *   REQUEST:  u8 methodLen, method (ASCII), u16 targetLen, target (path + query, UTF-8), headers
 *   RESPONSE: u16 status, headers
 *   headers:  u16 count, then per header: u16 nameLen, name (lower-case ASCII), u16 valueLen, value (latin1)
 *
 * A header with several values (set-cookie) is repeated.
 */
export type HeaderList = Array<[string, string]>;

export interface RequestHead {
  method: string;
  target: string;
  headers: HeaderList;
}

export interface ResponseHead {
  status: number;
  headers: HeaderList;
}

function headersSize(headers: HeaderList): number {
  let n = 2;
  for (const [k, v] of headers) n += 4 + Buffer.byteLength(k, 'latin1') + Buffer.byteLength(v, 'latin1');
  return n;
}

function writeHeaders(b: Buffer, off: number, headers: HeaderList): number {
  if (headers.length > 0xffff) throw new RangeError('too many headers');
  off = b.writeUInt16BE(headers.length, off);
  for (const [k, v] of headers) {
    const kl = b.write(k, off + 2, 'latin1');
    b.writeUInt16BE(kl, off);
    off += 2 + kl;
    const vl = b.write(v, off + 2, 'latin1');
    b.writeUInt16BE(vl, off);
    off += 2 + vl;
  }
  return off;
}

function readHeaders(p: Buffer, off: number): HeaderList {
  if (off + 2 > p.length) throw new ProtocolError('truncated header count');
  const count = p.readUInt16BE(off);
  off += 2;
  const headers: HeaderList = new Array(count);
  for (let i = 0; i < count; i++) {
    if (off + 2 > p.length) throw new ProtocolError('truncated header name');
    const kl = p.readUInt16BE(off);
    off += 2;
    if (off + kl + 2 > p.length) throw new ProtocolError('truncated header');
    const k = p.toString('latin1', off, off + kl);
    off += kl;
    const vl = p.readUInt16BE(off);
    off += 2;
    if (off + vl > p.length) throw new ProtocolError('truncated header value');
    headers[i] = [k, p.toString('latin1', off, off + vl)];
    off += vl;
  }
  if (off !== p.length) throw new ProtocolError('trailing bytes after headers');
  return headers;
}

export function encodeRequestHead(head: RequestHead): Buffer {
  const ml = Buffer.byteLength(head.method, 'latin1');
  const tl = Buffer.byteLength(head.target, 'utf8');
  if (ml === 0 || ml > 0xff) throw new RangeError('bad method length');
  if (tl > 0xffff) throw new RangeError('request target too long');
  const b = Buffer.allocUnsafe(1 + ml + 2 + tl + headersSize(head.headers));
  b[0] = ml;
  b.write(head.method, 1, 'latin1');
  b.writeUInt16BE(tl, 1 + ml);
  b.write(head.target, 3 + ml, 'utf8');
  writeHeaders(b, 3 + ml + tl, head.headers);
  return b;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function decodeRequestHead(p: Buffer): RequestHead {
  if (p.length < 1) throw new ProtocolError('empty REQUEST payload');
  const ml = p[0]!;
  if (ml === 0 || 1 + ml + 2 > p.length) throw new ProtocolError('truncated method');
  const method = p.toString('latin1', 1, 1 + ml);
  if (!TOKEN.test(method)) throw new ProtocolError('invalid method');
  const tl = p.readUInt16BE(1 + ml);
  const ts = 3 + ml;
  if (ts + tl > p.length) throw new ProtocolError('truncated target');
  const target = p.toString('utf8', ts, ts + tl);
  if (!target.startsWith('/')) throw new ProtocolError('request target must start with /');
  return { method, target, headers: readHeaders(p, ts + tl) };
}

export function encodeResponseHead(head: ResponseHead): Buffer {
  const b = Buffer.allocUnsafe(2 + headersSize(head.headers));
  b.writeUInt16BE(head.status, 0);
  writeHeaders(b, 2, head.headers);
  return b;
}

export function decodeResponseHead(p: Buffer): ResponseHead {
  if (p.length < 4) throw new ProtocolError('truncated RESPONSE payload');
  const status = p.readUInt16BE(0);
  if (status < 100 || status > 999) throw new ProtocolError(`invalid status ${status}`);
  return { status, headers: readHeaders(p, 2) };
}
