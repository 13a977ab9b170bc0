/**
 * The `auth/tokens/revoked` Bus event: access tokens revoked before their expiry (logout, a token
 * deleted by its owner, every other token on a password change). Authenticator.revoke publishes it
 * once per revocation; every hub node evicts the tokens from its session cache on it, and it is the
 * feed for pushing revocations to agents that verify tokens offline.
 *
 * Payload, binary, big-endian (compact: a logout is 74 bytes plus the user id):
 *
 *   offset  size  field
 *   0       1     version = 1
 *   1       1     L = length of the user id in bytes (1..255)
 *   2       L     user id, UTF-8 (the owner of every token in the event)
 *   2+L     2     N = number of tokens (1..65,535; more are split over several events)
 *   4+L     40×N  per token: 32 bytes SHA-256 of the token (the Store's `tokenHash`, as raw bytes;
 *                 lower-case hex of them is the stored form), then 8 bytes expiresAt (ms since the epoch,
 *                 unsigned): after it the token is dead anyway, so a holder of the list may drop it.
 *
 * Only node built-ins here, so the agent can decode it too.
 */
import { Buffer } from 'node:buffer';

export const TOKENS_REVOKED_TOPIC = 'auth/tokens/revoked';

export const REVOCATION_VERSION = 1;
/** Tokens per event; a larger revocation is published as several events. */
export const MAX_TOKENS_PER_EVENT = 65_535;

const HASH_BYTES = 32;
const ENTRY_BYTES = HASH_BYTES + 8;
const HEX_HASH = /^[0-9a-f]{64}$/;

export interface RevokedToken {
  /** SHA-256 of the token, lower-case hex (as the Store keeps it). */
  tokenHash: string;
  /** ms since the epoch. */
  expiresAt: number;
}

export interface Revocation {
  userId: string;
  tokens: RevokedToken[];
}

/** Encodes one event; throws RangeError on input that cannot be carried (see the layout above). */
export function encodeRevocation(r: Revocation): Buffer {
  const user = Buffer.from(r.userId, 'utf8');
  if (user.length < 1 || user.length > 255) throw new RangeError('user id must be 1 to 255 bytes');
  if (r.tokens.length < 1 || r.tokens.length > MAX_TOKENS_PER_EVENT) throw new RangeError(`1 to ${MAX_TOKENS_PER_EVENT} tokens per event`);
  const out = Buffer.allocUnsafe(4 + user.length + ENTRY_BYTES * r.tokens.length);
  out[0] = REVOCATION_VERSION;
  out[1] = user.length;
  user.copy(out, 2);
  let o = 2 + user.length;
  out.writeUInt16BE(r.tokens.length, o);
  o += 2;
  for (const t of r.tokens) {
    if (!HEX_HASH.test(t.tokenHash)) throw new RangeError('tokenHash must be 64 lower-case hex digits');
    if (!Number.isSafeInteger(t.expiresAt) || t.expiresAt < 0) throw new RangeError('expiresAt must be a non-negative integer');
    out.write(t.tokenHash, o, HASH_BYTES, 'hex');
    out.writeBigUInt64BE(BigInt(t.expiresAt), o + HASH_BYTES);
    o += ENTRY_BYTES;
  }
  return out;
}

/** Splits a revocation into events of at most MAX_TOKENS_PER_EVENT tokens. */
export function encodeRevocations(r: Revocation): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < r.tokens.length; i += MAX_TOKENS_PER_EVENT) {
    out.push(encodeRevocation({ userId: r.userId, tokens: r.tokens.slice(i, i + MAX_TOKENS_PER_EVENT) }));
  }
  return out;
}

/** Decodes one event; throws RangeError on a payload that is not exactly one version-1 event. */
export function decodeRevocation(b: Buffer): Revocation {
  if (b.length < 4 || b[0] !== REVOCATION_VERSION) throw new RangeError('not a version 1 revocation');
  const userLength = b[1]!;
  if (userLength === 0 || b.length < 4 + userLength) throw new RangeError('truncated revocation');
  const userId = b.toString('utf8', 2, 2 + userLength);
  let o = 2 + userLength;
  const n = b.readUInt16BE(o);
  o += 2;
  if (n === 0 || b.length !== o + n * ENTRY_BYTES) throw new RangeError('revocation length does not match its token count');
  const tokens: RevokedToken[] = [];
  for (let i = 0; i < n; i++, o += ENTRY_BYTES) {
    const expiresAt = b.readBigUInt64BE(o + HASH_BYTES);
    if (expiresAt > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('expiresAt out of range');
    tokens.push({ tokenHash: b.toString('hex', o, o + HASH_BYTES), expiresAt: Number(expiresAt) });
  }
  return { userId, tokens };
}
