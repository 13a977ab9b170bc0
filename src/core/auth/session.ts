import type { UserRecord } from '../../store/store.js';

/**
 * A signed-in user as the Authenticator resolves a bearer token. Its own file so the token loaders
 * (oauth/session.ts) can build one without importing the Authenticator that calls them.
 */
export interface Session {
  user: UserRecord;
  expiresAt: number;
  /** SHA-256 (hex) of the token, as the Store keys it. */
  tokenHash: string;
  /** What an OAuth access token may do (src/oauth/scopes.ts); undefined for a first-party token: everything. */
  scopes?: ReadonlySet<string>;
  /** For an OAuth access token: its client and token family, so a revocation can find it in the cache. */
  oauth?: { clientId: string; familyId: string };
}

/**
 * Sessions that ended before their expiry, as Authenticator.onRevoked tells them: first-party tokens
 * by hash (auth/tokens/revoked, from any node), OAuth tokens by a test on the session (a client, grant
 * or token family revoked, from this node or the OAuth revocation log).
 */
export type EndedSessions = { tokenHashes: readonly string[] } | { match(s: Session): boolean };
