import { createPublicKey, verify, type KeyObject } from 'node:crypto';

/**
 * Access tokens that can be checked without the hub (docs/protocol.md "LAN access"):
 *
 *   cr1.<base64url(JSON claims)>.<base64url(Ed25519 signature of the ASCII text "cr1.<claims part>")>
 *
 * The hub signs them with a key pair it keeps in its data directory and sends the public key to its
 * agents (LAN_KEYS frame), so an agent can accept the hub's tokens on the LAN with no internet. The hub
 * itself still looks every token up by its SHA-256 in the Store, so a token is only ever as good as
 * the hub's record of it; the signature is what lets a device decide alone.
 *
 * Shared by the hub (which signs) and the agent (which verifies): node built-ins only.
 */
export const SIGNED_TOKEN_PREFIX = 'cr1.';
/** Longest token either side accepts: claims (an email of up to 254 bytes) + a 64-byte signature. */
export const MAX_SIGNED_TOKEN_CHARS = 1024;

export interface TokenClaims {
  /** User id (`u`). */
  userId: string;
  /** The owner email, lower-cased (`e`): a device serves the tokens of the user its own info names. */
  email: string;
  /** Expiry, ms since the epoch (`x`). */
  expiresAt: number;
  /** Random token id (`t`): two tokens with the same claims are still different tokens. */
  tokenId: string;
  /** Id of the signing key (`k`): the first 16 hex digits of SHA-256 of the raw public key. */
  keyId: string;
}

/** A public key as the hub announces it: its id and the raw 32-byte Ed25519 key, base64url. */
export interface PublicTokenKey {
  kid: string;
  ed25519: string;
}

/** The claims part of a token: compact JSON keys, so tokens stay short in headers. */
export function encodeClaims(c: TokenClaims): string {
  const json = JSON.stringify({ u: c.userId, e: c.email, x: c.expiresAt, t: c.tokenId, k: c.keyId });
  return Buffer.from(json, 'utf8').toString('base64url');
}

export interface ParsedToken {
  claims: TokenClaims;
  /** What the signature covers: `cr1.<claims part>`. */
  signed: Buffer;
  signature: Buffer;
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/** Splits and decodes a token; undefined for anything that is not a well-formed cr1 token. */
export function parseSignedToken(token: string): ParsedToken | undefined {
  if (token.length > MAX_SIGNED_TOKEN_CHARS || !token.startsWith(SIGNED_TOKEN_PREFIX)) return undefined;
  const dot = token.indexOf('.', SIGNED_TOKEN_PREFIX.length);
  if (dot < 0) return undefined;
  const claimsPart = token.slice(SIGNED_TOKEN_PREFIX.length, dot);
  const sigPart = token.slice(dot + 1);
  if (!B64URL.test(claimsPart) || !B64URL.test(sigPart)) return undefined;
  const signature = Buffer.from(sigPart, 'base64url');
  if (signature.length !== 64) return undefined; // RFC 8032 §5.1.6: an Ed25519 signature is 64 bytes
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(claimsPart, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const o = raw as Record<string, unknown>;
  if (typeof o.u !== 'string' || typeof o.e !== 'string' || typeof o.t !== 'string' || typeof o.k !== 'string'
    || typeof o.x !== 'number' || !Number.isSafeInteger(o.x)) return undefined;
  return {
    claims: { userId: o.u, email: o.e, expiresAt: o.x, tokenId: o.t, keyId: o.k },
    signed: Buffer.from(token.slice(0, dot), 'ascii'),
    signature,
  };
}

/** A KeyObject for an announced key; throws for anything that is not a 32-byte Ed25519 key. */
export function importPublicKey(k: PublicTokenKey): KeyObject {
  const raw = Buffer.from(k.ed25519, 'base64url');
  if (raw.length !== 32) throw new Error('an Ed25519 public key is 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}

/** True when `signature` is the Ed25519 signature of `signed` under `key`. */
export function signatureValid(p: ParsedToken, key: KeyObject): boolean {
  try {
    return verify(null, p.signed, key, p.signature);
  } catch {
    return false;
  }
}
