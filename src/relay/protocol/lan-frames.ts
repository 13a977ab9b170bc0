import { ProtocolError } from './frames.js';
import type { PublicTokenKey } from './signed-token.js';

/**
 * Payloads of the frames that keep a device usable on the LAN without the hub (docs/protocol.md
 * "LAN access"). None is on the request path: they go at connect time and when something changes.
 *
 *   LAN_KEYS   (hub → agent)  JSON {"keys":[{"kid":"<16 hex>","ed25519":"<base64url, 32 bytes>"}]}
 *   REVOKED    (hub → agent)  u16 count, then count × (32-byte SHA-256 of the token, u64 expiresAt ms)
 *   INVALIDATE (agent → hub)  u16 count, then count × (u16 length, request target in UTF-8)
 */

/** The feature name HELLO and WELCOME list (`features`) when the side speaks these frames. */
export const LAN_FEATURE = 'lan';
/** Keys one LAN_KEYS frame may carry: room for a rotation without letting a hub fill the agent's disk. */
export const MAX_LAN_KEYS = 8;
const REVOKED_ENTRY_BYTES = 32 + 8;
const KID = /^[0-9a-f]{16}$/;
const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;

export function encodeLanKeys(keys: readonly PublicTokenKey[]): Buffer {
  return Buffer.from(JSON.stringify({ keys: keys.map((k) => ({ kid: k.kid, ed25519: k.ed25519 })) }));
}

export function decodeLanKeys(p: Buffer): PublicTokenKey[] {
  let o: unknown;
  try {
    o = JSON.parse(p.toString('utf8'));
  } catch {
    throw new ProtocolError('LAN_KEYS payload is not JSON');
  }
  const keys = (o as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length > MAX_LAN_KEYS) throw new ProtocolError(`LAN_KEYS must carry a list of at most ${MAX_LAN_KEYS} keys`);
  return keys.map((k: unknown) => {
    const { kid, ed25519 } = (k ?? {}) as { kid?: unknown; ed25519?: unknown };
    if (typeof kid !== 'string' || !KID.test(kid) || typeof ed25519 !== 'string' || !B64URL_32.test(ed25519)) {
      throw new ProtocolError('LAN_KEYS key must be {"kid": 16 hex digits, "ed25519": 32 bytes in base64url}');
    }
    return { kid, ed25519 };
  });
}

export interface RevokedEntry {
  /** SHA-256 of the whole token, lower-case hex (as the Store keeps it). */
  tokenHash: string;
  expiresAt: number;
}

/** Entries that fit one frame of `maxFrameBytes`. */
export function revokedPerFrame(maxFrameBytes: number): number {
  return Math.min(0xffff, Math.floor((maxFrameBytes - 2) / REVOKED_ENTRY_BYTES));
}

export function encodeRevoked(entries: readonly RevokedEntry[]): Buffer {
  if (entries.length > 0xffff) throw new RangeError('too many REVOKED entries for one frame');
  const b = Buffer.allocUnsafe(2 + entries.length * REVOKED_ENTRY_BYTES);
  b.writeUInt16BE(entries.length, 0);
  let off = 2;
  for (const e of entries) {
    if (b.write(e.tokenHash, off, 32, 'hex') !== 32) throw new RangeError('tokenHash must be 64 hex digits');
    b.writeBigUInt64BE(BigInt(e.expiresAt), off + 32);
    off += REVOKED_ENTRY_BYTES;
  }
  return b;
}

export function decodeRevoked(p: Buffer): RevokedEntry[] {
  if (p.length < 2) throw new ProtocolError('REVOKED payload shorter than 2 bytes');
  const count = p.readUInt16BE(0);
  if (p.length !== 2 + count * REVOKED_ENTRY_BYTES) throw new ProtocolError(`REVOKED payload of ${p.length} bytes does not hold exactly ${count} entries`);
  const out: RevokedEntry[] = [];
  for (let off = 2; off < p.length; off += REVOKED_ENTRY_BYTES) {
    const expiresAt = p.readBigUInt64BE(off + 32);
    if (expiresAt > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError('REVOKED expiresAt out of range');
    out.push({ tokenHash: p.toString('hex', off, off + 32), expiresAt: Number(expiresAt) });
  }
  return out;
}

/** Bytes one target takes in an INVALIDATE payload. */
export function invalidateEntryBytes(target: string): number {
  return 2 + Buffer.byteLength(target, 'utf8');
}

export function encodeInvalidate(targets: readonly string[]): Buffer {
  if (targets.length > 0xffff) throw new RangeError('too many INVALIDATE targets for one frame');
  const b = Buffer.allocUnsafe(2 + targets.reduce((n, t) => n + invalidateEntryBytes(t), 0));
  b.writeUInt16BE(targets.length, 0);
  let off = 2;
  for (const t of targets) {
    const n = b.write(t, off + 2, 'utf8');
    if (n > 0xffff) throw new RangeError('INVALIDATE target longer than 65535 bytes');
    b.writeUInt16BE(n, off);
    off += 2 + n;
  }
  return b;
}

/** The targets; each MUST start with `/` (origin form, as in REQUEST heads). */
export function decodeInvalidate(p: Buffer): string[] {
  if (p.length < 2) throw new ProtocolError('INVALIDATE payload shorter than 2 bytes');
  const count = p.readUInt16BE(0);
  const out: string[] = [];
  let off = 2;
  for (let i = 0; i < count; i++) {
    if (off + 2 > p.length) throw new ProtocolError('INVALIDATE payload truncated');
    const n = p.readUInt16BE(off);
    if (off + 2 + n > p.length) throw new ProtocolError('INVALIDATE payload truncated');
    const target = p.toString('utf8', off + 2, off + 2 + n);
    if (!target.startsWith('/')) throw new ProtocolError('INVALIDATE target must start with /');
    out.push(target);
    off += 2 + n;
  }
  if (off !== p.length) throw new ProtocolError('INVALIDATE payload has bytes after its last target');
  return out;
}
