/**
 * The OAuth provider's random values and the checks on them.
 *
 * Codes, tokens and client secrets are 32 random bytes (base64url) behind a prefix that names their
 * kind. The prefix contains a '.', which base64url never produces, so a first-party token from
 * POST /v1/auth can never be mistaken for one of these, and the Authenticator knows which table to
 * ask without trying both. Like other tokens they are stored as SHA-256 hashes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { safeEqualHex } from '../core/secrets.js';

export const PREFIX = {
  accessToken: 'cro.at.',
  refreshToken: 'cro.rt.',
  code: 'cro.ac.',
  clientSecret: 'cro.cs.',
} as const;

/** The longest code, token or secret accepted from a client (ours are 50 characters). */
export const MAX_SECRET_CHARS = 128;

export function newOAuthSecret(kind: Exclude<keyof typeof PREFIX, 'refreshToken'>): string {
  return PREFIX[kind] + randomBytes(32).toString('base64url');
}

/**
 * A refresh token names its token family (`cro.rt.<family id>.<random>`): rotation deletes refresh
 * tokens two generations back, yet presenting any old one is still recognised as reuse of that
 * family (RFC 9700 §4.14.2). Only a holder of one of the family's tokens knows its id.
 */
export function newRefreshToken(familyId: string): string {
  return `${PREFIX.refreshToken}${familyId}.${randomBytes(32).toString('base64url')}`;
}

/** The family id a refresh token names, if it has the right shape. */
export function refreshTokenFamily(token: string): string | undefined {
  return /^cro\.rt\.(of_[a-z2-7]{16})\.[A-Za-z0-9_-]{43}$/.exec(token)?.[1];
}

export function isOAuthAccessToken(token: string): boolean {
  return token.startsWith(PREFIX.accessToken);
}

/** RFC 7636 §4.1: code_verifier = 43*128unreserved. */
const CODE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;
/** RFC 7636 §4.2: an S256 challenge is BASE64URL(SHA256(verifier)), always 43 characters. */
const S256_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;

export function isCodeVerifier(v: string): boolean {
  return CODE_VERIFIER.test(v);
}

export function isS256Challenge(c: string): boolean {
  return S256_CHALLENGE.test(c);
}

/** RFC 7636 §4.6: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) == code_challenge. */
export function verifierMatches(verifier: string, challenge: string): boolean {
  const computed = createHash('sha256').update(verifier, 'ascii').digest('base64url');
  return safeEqualHex(computed, challenge);
}
