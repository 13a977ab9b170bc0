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

/** The event, or undefined for a payload of another shape (a bus message is checked like any input). */
export function decodeTokensRevoked(payload: Buffer): TokensRevoked | undefined {
  let o: unknown;
  try {
    o = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null) return undefined;
  const { userId, tokens } = o as { userId?: unknown; tokens?: unknown };
  if (typeof userId !== 'string' || !Array.isArray(tokens)) return undefined;
  const out: TokensRevoked['tokens'] = [];
  for (const t of tokens as unknown[]) {
    const { tokenHash, expiresAt } = (t ?? {}) as { tokenHash?: unknown; expiresAt?: unknown };
    if (typeof tokenHash === 'string' && SHA256_HEX.test(tokenHash) && typeof expiresAt === 'number' && Number.isSafeInteger(expiresAt)) out.push({ tokenHash, expiresAt });
  }
  return { userId, tokens: out };
}
