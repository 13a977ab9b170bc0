/**
 * The OAuth 2.0 provider's part of the Store (src/oauth/): registered clients, the grants users gave
 * them, authorization codes, access and refresh tokens, and the revocation log.
 *
 * As elsewhere, no secret reaches the Store in clear: client secrets, codes and tokens arrive as
 * SHA-256 hashes (they are 256-bit random values). Scopes are space-separated (RFC 6749 §3.3).
 *
 * Every method that deletes tokens also appends an `OAuthRevocation`, in the same transaction: each
 * hub node (and a node that did not do the deleting, such as the one the CLI talks past) reads the log
 * and evicts the sessions it has cached for those tokens.
 */
export interface OAuthClientRecord {
  id: string;
  name: string;
  /** Exact redirect URIs (RFC 6749 §3.1.2); an authorization request must name one of them. */
  redirectUris: string[];
  /** SHA-256 of the client secret; null for a public client, which must use PKCE. */
  secretHash: string | null;
  createdAt: number;
}

/** What a user consented to for one client: one row per (user, client), scopes merged across consents. */
export interface OAuthGrantRecord {
  userId: string;
  clientId: string;
  scope: string;
  createdAt: number;
  updatedAt: number;
}

export interface OAuthCodeRecord {
  codeHash: string;
  clientId: string;
  userId: string;
  redirectUri: string;
  scope: string;
  /** RFC 7636 S256 code challenge; null when the (confidential) client sent none. */
  codeChallenge: string | null;
  /** The family the tokens from this code belong to; a replayed code revokes it. */
  familyId: string;
  createdAt: number;
  expiresAt: number;
  /** When the code was exchanged; a code is single-use. */
  usedAt: number | null;
}

export type OAuthTokenKind = 'access' | 'refresh';

export interface OAuthTokenRecord {
  tokenHash: string;
  kind: OAuthTokenKind;
  /** All tokens descending from one authorization code; revoked together. */
  familyId: string;
  clientId: string;
  userId: string;
  scope: string;
  createdAt: number;
  expiresAt: number;
  /** When a refresh token was exchanged for new ones; null while it is the current one. */
  rotatedAt: number | null;
}

/** A deletion of tokens: of a client (userId null), of one user's grant, or of one family. */
export interface OAuthRevocation {
  clientId: string;
  userId: string | null;
  familyId: string | null;
  revokedAt: number;
}

export interface OAuthStore {
  createOAuthClient(client: OAuthClientRecord): Promise<void>;
  getOAuthClient(id: string): Promise<OAuthClientRecord | undefined>;
  listOAuthClients(): Promise<OAuthClientRecord[]>;
  /** Deletes the client with its grants, codes and tokens; logs a revocation. False if unknown. */
  deleteOAuthClient(id: string, now: number): Promise<boolean>;

  /** Inserts or replaces the (user, client) grant; `createdAt` of an existing row is kept. */
  saveOAuthGrant(grant: OAuthGrantRecord): Promise<void>;
  getOAuthGrant(userId: string, clientId: string): Promise<OAuthGrantRecord | undefined>;
  listOAuthGrantsByUser(userId: string): Promise<OAuthGrantRecord[]>;
  /** Deletes the grant with that user's codes and tokens for the client; logs a revocation. False if there was no grant. */
  deleteOAuthGrant(userId: string, clientId: string, now: number): Promise<boolean>;

  createOAuthCode(code: OAuthCodeRecord): Promise<void>;
  getOAuthCode(codeHash: string): Promise<OAuthCodeRecord | undefined>;
  /**
   * Marks an unused code used and stores the tokens issued for it, atomically. False (and nothing
   * stored) if the code is unknown or already used: two exchanges of one code never both succeed.
   */
  redeemOAuthCode(codeHash: string, now: number, tokens: OAuthTokenRecord[]): Promise<boolean>;

  getOAuthToken(tokenHash: string): Promise<OAuthTokenRecord | undefined>;
  /**
   * Marks a current refresh token rotated and stores its successors, atomically. False (and nothing
   * stored) if it is unknown or was already rotated. Refresh tokens of the family rotated before are
   * deleted, so a client that refreshes often does not pile up rows until they expire (reuse of an
   * older one is still recognised: a refresh token names its family, see src/oauth/secrets.ts).
   */
  rotateOAuthRefreshToken(tokenHash: string, now: number, tokens: OAuthTokenRecord[]): Promise<boolean>;
  /** The client and user of a family that still has tokens, or undefined. */
  findOAuthFamily(familyId: string): Promise<{ clientId: string; userId: string } | undefined>;
  /** Deletes every token of the family; logs a revocation. Returns how many tokens were deleted. */
  revokeOAuthFamily(family: { familyId: string; clientId: string; userId: string }, now: number): Promise<number>;

  /** Revocations logged at or after `since` (ms), oldest first. */
  listOAuthRevocationsSince(since: number): Promise<OAuthRevocation[]>;
  /**
   * Removes codes and tokens whose expiry has been reached (valid while `now < expiresAt`) and
   * revocations logged before `revocationsBefore`. Returns how many rows went.
   */
  deleteExpiredOAuth(now: number, revocationsBefore: number): Promise<number>;
}
