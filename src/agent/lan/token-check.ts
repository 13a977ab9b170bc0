import { createHash } from 'node:crypto';
import { parseSignedToken, signatureValid, type TokenClaims } from '../../relay/protocol/signed-token.js';
import type { TrustStore } from './trust-store.js';

export type TokenVerdict =
  | { ok: true; claims: TokenClaims }
  | { ok: false; code: 'CR_ERR_UNAUTHORIZED' | 'CR_ERR_FORBIDDEN'; reason: string };

/** Tokens whose signature has been checked, so a client's repeated requests cost one verification. */
const VERIFIED_CACHE_SIZE = 1024;

/**
 * Decides whether a LAN request's bearer token may use this device, with no hub: a `cr1.` token signed
 * by a key a hub sent (LAN_KEYS), not expired, not revoked (REVOKED, or past the revocation horizon),
 * and issued to the email this device names as its owner (its GET /device `email`, the same rule the
 * hub applies). Refusals carry the hub's codes: 401 CR_ERR_UNAUTHORIZED for a token that is not
 * valid, 403 CR_ERR_FORBIDDEN for a valid token of someone who does not own this device.
 */
export class TokenChecker {
  /** token → its claims and hash; only tokens with a good signature get in (insertion order = age). */
  readonly #verified = new Map<string, { claims: TokenClaims; hash: string }>();

  constructor(
    private readonly trust: TrustStore,
    private readonly ownerEmail: () => string | null,
  ) {}

  check(token: string | undefined, now = Date.now()): TokenVerdict {
    if (!token) return refuse('CR_ERR_UNAUTHORIZED', 'an access token from the hub is required (Authorization: Bearer)');
    let v = this.#verified.get(token);
    if (!v) {
      const parsed = parseSignedToken(token);
      if (!parsed) return refuse('CR_ERR_UNAUTHORIZED', 'not an access token this device can check (log in to the hub again for a signed one)');
      const key = this.trust.key(parsed.claims.keyId);
      if (!key) {
        return refuse('CR_ERR_UNAUTHORIZED', this.trust.keyCount === 0
          ? 'this device has not received its hub\'s token keys yet: connect it to the hub once'
          : 'the token is signed by a key this device does not know');
      }
      if (!signatureValid(parsed, key)) return refuse('CR_ERR_UNAUTHORIZED', 'the token signature is not valid');
      v = { claims: parsed.claims, hash: createHash('sha256').update(token, 'utf8').digest('hex') };
      this.#verified.set(token, v);
      if (this.#verified.size > VERIFIED_CACHE_SIZE) this.#verified.delete(this.#verified.keys().next().value!);
    }
    const { claims, hash } = v;
    if (claims.expiresAt <= now) return refuse('CR_ERR_UNAUTHORIZED', 'the token has expired');
    if (this.trust.isRevoked(hash)) return refuse('CR_ERR_UNAUTHORIZED', 'the token has been revoked');
    if (claims.expiresAt <= this.trust.horizon) return refuse('CR_ERR_UNAUTHORIZED', 'the token expires too soon to be checked against this device\'s revocation list; log in again');
    const owner = this.ownerEmail();
    if (!owner) return refuse('CR_ERR_FORBIDDEN', 'this device has no owner email (its GET /device names none)');
    if (claims.email.toLowerCase() !== owner) return refuse('CR_ERR_FORBIDDEN', 'the token belongs to a user who does not own this device');
    return { ok: true, claims };
  }
}

function refuse(code: 'CR_ERR_UNAUTHORIZED' | 'CR_ERR_FORBIDDEN', reason: string): TokenVerdict {
  return { ok: false, code, reason };
}
