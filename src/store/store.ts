/**
 * Persistent state of the hub. The embedded implementation is SQLite (`SqliteStore`); PostgreSQL comes
 * with the scale-out. Every implementation passes test/store-contract.test.ts.
 *
 * Secrets never reach a Store in clear: passwords arrive as scrypt hashes, device secrets and access
 * tokens as SHA-256 hashes (they are 256-bit random values, so a fast hash is enough).
 */
import type { OAuthStore } from './oauth-store.js';

export type * from './oauth-store.js';

export interface UserRecord {
  id: string;
  email: string;
  passwordHash: string;
  createdAt: number;
}

export interface DeviceRecord {
  id: string;
  name: string;
  /** Owner's email as the device reports it (seed "User Registration"); lower-cased. */
  email: string | null;
  secretHash: string;
  /** Last device-info JSON the agent sent (GET /device on the device), as an object. */
  info: Record<string, unknown> | null;
  createdAt: number;
  lastSeenAt: number | null;
  /** The factory key that provisioned it (POST /v1/factory/devices), else null. */
  factoryKeyId: string | null;
  /** When it was revoked (`cloudrest devices revoke`): its tunnel and MQTT connects are refused. */
  revokedAt: number | null;
}

export interface TokenRecord {
  tokenHash: string;
  userId: string;
  createdAt: number;
  expiresAt: number;
}

/** A token as its owner sees it listed (GET /v1/auth/tokens). */
export interface TokenInfo extends TokenRecord {
  /** When the token was last presented, to within about a minute (see Authenticator); null if never. */
  lastUsedAt: number | null;
}

/**
 * A pending email confirmation: the seed's ownership row with "confirmed" = false. A device reported an
 * email that no user has; a mail with a link carrying the confirmation id went (or is going) to it.
 * Only the SHA-256 of the id is kept. The email is confirmed, and its user created, when the id comes
 * back with a password (Store.confirmEmail); every confirmation of that email is then used.
 */
export interface ConfirmationRecord {
  idHash: string;
  /** Lower-cased and trimmed. */
  email: string;
  /** The device whose connection asked for it (null if it came another way). */
  deviceId: string | null;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
}

export type ConfirmResult =
  | { status: 'confirmed'; user: UserRecord }
  /** unknown id; used already; expired; or the email got a user meanwhile (nothing is changed). */
  | { status: 'unknown' | 'used' | 'expired' | 'registered'; email?: string };

/** A token revoked before its expiry; kept until then so agents serving the LAN can refuse it. */
export interface RevokedTokenRecord {
  tokenHash: string;
  userId: string;
  expiresAt: number;
  revokedAt: number;
}

export interface NewDevice {
  id: string;
  name: string;
  email: string | null;
  secretHash: string;
  /** Set when a factory key provisions the device. */
  factoryKeyId?: string | null;
}

/** A key a factory uses to provision devices (seed 002 "Device Factory Provisioning"). */
export interface FactoryKeyRecord {
  id: string;
  name: string;
  /** SHA-256 of the key (the key itself is shown once, when added or rotated). */
  keyHash: string;
  /** Random, per key; device secrets are derived from it so re-provisioning answers the same secret. */
  derivationKey: string;
  createdAt: number;
  rotatedAt: number | null;
  revokedAt: number | null;
}

/** The OAuth provider's methods are declared in oauth-store.ts. */
export interface Store extends OAuthStore {
  /** Applies pending migrations. Called once before use. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  createUser(user: { id: string; email: string; passwordHash: string }): Promise<UserRecord>;
  getUserByEmail(email: string): Promise<UserRecord | undefined>;
  getUserById(id: string): Promise<UserRecord | undefined>;
  listUsers(): Promise<UserRecord[]>;
  setUserPassword(id: string, passwordHash: string): Promise<void>;

  createDevice(device: NewDevice): Promise<DeviceRecord>;
  getDevice(id: string): Promise<DeviceRecord | undefined>;
  listDevices(): Promise<DeviceRecord[]>;
  listDevicesByEmail(email: string): Promise<DeviceRecord[]>;
  /** Saves what the agent reported at connect; the email in `info` (if a string) becomes the owner email. */
  updateDeviceInfo(id: string, info: Record<string, unknown>, seenAt: number): Promise<void>;
  touchDevice(id: string, seenAt: number): Promise<void>;
  deleteDevice(id: string): Promise<boolean>;
  /**
   * Adds every device or none (one transaction). A device id that exists, or appears twice, throws
   * DuplicateError whose `key` is that id.
   */
  createDevices(devices: readonly NewDevice[]): Promise<DeviceRecord[]>;
  /** Revokes (a time) or re-enables (null) a device; false if there is no such device. */
  setDeviceRevoked(id: string, revokedAt: number | null): Promise<boolean>;

  createFactoryKey(key: { id: string; name: string; keyHash: string; derivationKey: string }): Promise<FactoryKeyRecord>;
  getFactoryKey(id: string): Promise<FactoryKeyRecord | undefined>;
  getFactoryKeyByHash(keyHash: string): Promise<FactoryKeyRecord | undefined>;
  listFactoryKeys(): Promise<FactoryKeyRecord[]>;
  /** Replaces the key's hash (the old key stops working); false if unknown or revoked. */
  rotateFactoryKey(id: string, keyHash: string, at: number): Promise<boolean>;
  /** Marks the key revoked (the first time counts); false if unknown. */
  revokeFactoryKey(id: string, at: number): Promise<boolean>;

  createToken(token: TokenRecord): Promise<void>;
  getToken(tokenHash: string): Promise<TokenRecord | undefined>;
  deleteToken(tokenHash: string): Promise<void>;
  /** Removes expired tokens; returns how many. */
  deleteExpiredTokens(now: number): Promise<number>;
  /** The user's tokens that have not expired at `now`, newest first. */
  listTokensByUser(userId: string, now: number): Promise<TokenInfo[]>;
  /** Records that a token was presented. */
  touchToken(tokenHash: string, usedAt: number): Promise<void>;
  /** Deletes these tokens (any user's); returns how many existed. Revocation goes through Authenticator.revoke. */
  deleteTokens(tokenHashes: readonly string[]): Promise<number>;

  createConfirmation(c: Omit<ConfirmationRecord, 'usedAt'>): Promise<void>;
  getConfirmation(idHash: string): Promise<ConfirmationRecord | undefined>;
  /** Confirmations created at or after `since`, all or of one email or of one device (rate limits). */
  countConfirmations(filter: { since: number; email?: string; deviceId?: string }): Promise<number>;
  /**
   * Atomically: if the confirmation exists, is unused, has not expired at `now` and its email has no
   * user, creates the user with that email and marks every confirmation of the email used. Otherwise
   * changes nothing and says why.
   */
  confirmEmail(idHash: string, user: { id: string; passwordHash: string }, now: number): Promise<ConfirmResult>;
  /** Removes confirmations created before `createdBefore`, used or not; returns how many. */
  deleteConfirmationsCreatedBefore(createdBefore: number): Promise<number>;

  /** Records revoked tokens; one already recorded is left as it is. */
  addRevokedTokens(tokens: RevokedTokenRecord[]): Promise<void>;
  /** A user's revoked tokens that have not expired at `now`, most recently revoked first, at most `limit`. */
  listRevokedTokens(userId: string, now: number, limit: number): Promise<RevokedTokenRecord[]>;
  /** Forgets revocations of tokens that have expired (they are refused anyway); returns how many. */
  deleteExpiredRevokedTokens(now: number): Promise<number>;
}

/** Thrown by a Store when a unique key (user email, device id, token) already exists. */
export class DuplicateError extends Error {
  override readonly name = 'DuplicateError';
  /** The key that clashed, when the Store knows it (createDevices: the device id). */
  readonly key: string | undefined;

  constructor(message: string, options?: { cause?: unknown; key?: string }) {
    super(message, options);
    this.key = options?.key;
  }
}
