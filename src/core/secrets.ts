/**
 * Random identifiers, secrets and their hashes.
 *
 * Passwords are chosen by people, so they get a slow, salted hash (scrypt). Device secrets and access
 * tokens are 256-bit random values: guessing one is hopeless, so a plain SHA-256 is enough to keep them
 * out of the database in clear, and it lets a Store look them up by hash.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

// RFC 4648 base32, lower-cased: ids are case-insensitive-safe, fit in a DNS label and need no escaping.
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
/** 10 random bytes = 80 bits = exactly 16 base32 characters. */
const ID_BYTES = 10;

/**
 * A short random id: `prefix` followed by 16 lower-case base32 characters (80 bits).
 * Callers pass the whole prefix, separator included: `newId('d_')` for devices, `newId('u_')` for users.
 */
export function newId(prefix = ''): string {
  const bytes = randomBytes(ID_BYTES);
  let out = prefix;
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32[(buffer >>> bits) & 31];
    }
  }
  return out;
}

/** A device secret: 32 random bytes, base64url (43 characters). */
export function newSecret(): string {
  return randomOpaque();
}

/**
 * 32 random bytes, base64url, never starting with '-': a secret is typed after `--secret` on command
 * lines, where a leading dash reads as another option.
 */
function randomOpaque(): string {
  for (;;) {
    const s = randomBytes(32).toString('base64url');
    if (s[0] !== '-') return s;
  }
}

/** An access token: 32 random bytes, base64url (43 characters). */
export function newToken(): string {
  return randomOpaque();
}

/** Lower-case hex SHA-256 of the UTF-8 string; how device secrets and tokens are stored. */
export function sha256Hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

/** Compares two strings (typically hex digests) in time independent of where they differ. */
export function safeEqualHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  // Lengths of digests are public; only the content must not leak through timing.
  return x.length === y.length && timingSafeEqual(x, y);
}

const SCRYPT_N = 16384;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
// Bounds for parameters read back from storage, so a corrupted row cannot make verification hang.
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;

function scryptAsync(pw: string, salt: Buffer, keylen: number, N: number, r: number, p: number): Promise<Buffer> {
  // Node's default maxmem (32 MiB) is just above what N=16384, r=8 needs; allow stronger stored params.
  const maxmem = 256 * N * r + 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(pw, salt, keylen, { N, r, p, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Hashes a password as `scrypt$N$r$p$<salt base64url>$<hash base64url>`. */
export async function hashPassword(pw: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await scryptAsync(pw, salt, KEY_BYTES, SCRYPT_N, SCRYPT_R, SCRYPT_P);
  return ['scrypt', SCRYPT_N, SCRYPT_R, SCRYPT_P, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** True when `pw` matches a hash from `hashPassword`; false for a wrong password or a malformed hash. */
export async function verifyPassword(pw: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map((v) => (/^[1-9][0-9]{0,7}$/.test(v ?? '') ? Number(v) : NaN));
  if (N === undefined || r === undefined || p === undefined) return false;
  if (!(N > 1 && N <= MAX_N && (N & (N - 1)) === 0 && r >= 1 && r <= MAX_R && p >= 1 && p <= MAX_P)) return false;
  const salt = Buffer.from(parts[4] ?? '', 'base64url');
  const expected = Buffer.from(parts[5] ?? '', 'base64url');
  if (salt.length === 0 || expected.length < 16 || expected.length > 128) return false;
  const actual = await scryptAsync(pw, salt, expected.length, N, r, p);
  return timingSafeEqual(actual, expected);
}
