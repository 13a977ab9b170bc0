/**
 * Bus events about access tokens. `auth/tokens/revoked` carries tokens that stopped being valid before
 * their expiry (logout, revocation), so parts that check tokens without the Store (agents serving the
 * LAN) can refuse them. Payload: JSON `{"userId":"u_…","tokens":[{"tokenHash":"<sha256 hex>","expiresAt":ms}]}`.
 */
export const TOKENS_REVOKED_TOPIC = 'auth/tokens/revoked';

export interface TokensRevoked {
  userId: string;
  tokens: Array<{ tokenHash: string; expiresAt: number }>;
}

export function encodeTokensRevoked(e: TokensRevoked): Buffer {
  return Buffer.from(JSON.stringify(e));
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

const isExpiry = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/**
 * The event, or undefined for a payload of another shape (a bus message is checked like any input).
 * Besides the shape above it reads `{"userId", "tokenHashes": [...], "expiresAt": ms | [ms, …]}`, so
 * every publisher of revocations in the hub can be understood, whichever of the two it writes.
 */
export function decodeTokensRevoked(payload: Buffer): TokensRevoked | undefined {
  let o: unknown;
  try {
    o = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null) return undefined;
  const { userId, tokens, tokenHashes, expiresAt } = o as { userId?: unknown; tokens?: unknown; tokenHashes?: unknown; expiresAt?: unknown };
  if (typeof userId !== 'string') return undefined;
  const out: TokensRevoked['tokens'] = [];
  const add = (tokenHash: unknown, exp: unknown): void => {
    if (typeof tokenHash === 'string' && SHA256_HEX.test(tokenHash) && isExpiry(exp)) out.push({ tokenHash, expiresAt: exp });
  };
  if (Array.isArray(tokens)) {
    for (const t of tokens as unknown[]) {
      const { tokenHash, hash, expiresAt: exp } = (t ?? {}) as { tokenHash?: unknown; hash?: unknown; expiresAt?: unknown };
      add(tokenHash ?? hash, exp);
    }
  } else if (Array.isArray(tokenHashes)) {
    (tokenHashes as unknown[]).forEach((h, i) => add(h, Array.isArray(expiresAt) ? (expiresAt as unknown[])[i] : expiresAt));
  } else {
    return undefined;
  }
  return { userId, tokens: out };
}
