/**
 * Persistent state of the hub. The embedded implementation is SQLite (`SqliteStore`); the scaled one,
 * shared by every node, PostgreSQL (`PostgresStore`). Both are SqlStore (src/store/sql/) and pass
 * test/store-contract.ts, its race cases included: every "atomically" below holds under concurrency.
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
  /**
   * Owner's email (seed "User Registration"); lower-cased. Set by the trusted paths (`devices add
   * --email`, import, the factory API), by an accepted claim, or from the device's own report when that
   * attaches it to no account and takes it from none (see Store.updateDeviceInfo).
   */
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
  /**
   * 'registration': confirms an email, creating its user. 'claim': the accept (or decline) link for a
   * device's claim (DeviceClaimRecord) on the account of `email`.
   */
  purpose: 'registration' | 'claim';
  /** Lower-cased and trimmed. */
  email: string;
  /** The device whose connection asked for it (null if it came another way). */
  deviceId: string | null;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
}

/**
 * A device asking to belong to an account that has not accepted it (issue 12): it reported `email`,
 * which is an existing user's (or it has an owner and reported another address). Until the user of
 * `email` accepts, the device's owner stays what it was. One per device: its latest report.
 */
export interface DeviceClaimRecord {
  deviceId: string;
  /** Lower-cased and trimmed. */
  email: string;
  createdAt: number;
  /** When the user declined it; kept (and not listed) while the device reports the same email. */
  declinedAt: number | null;
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
  /**
   * Saves what the agent reported at connect, and, atomically, what its `email` (if a non-empty
   * string) means for ownership (issue 12: a device cannot attach itself to an account):
   * - the owner email already: nothing changes, and any claim of the device is dropped;
   * - the device has no owner account (no email, or one no user has) and no user has the reported
   *   email: it becomes the owner email (whoever confirms the address owns the device);
   * - otherwise the owner stays, and the device claims the reported email (DeviceClaimRecord); a
   *   claim of the same email is kept as it is (a declined one stays declined). A device with no owner
   *   account claiming an existing user's email loses its unconfirmed owner email.
   * No usable email in `info` keeps the owner and drops any claim.
   */
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

  getDeviceClaim(deviceId: string): Promise<DeviceClaimRecord | undefined>;
  /** The claims on this email's account not declined, of devices that exist, oldest first. */
  listDeviceClaims(email: string): Promise<DeviceClaimRecord[]>;
  /**
   * Atomically: if the device claims `email` and the claim is not declined, the device's owner becomes
   * `email`, the claim is removed and its unused links are used at `now`; returns the device. Otherwise
   * changes nothing and returns undefined.
   */
  acceptDeviceClaim(deviceId: string, email: string, now: number): Promise<DeviceRecord | undefined>;
  /** Marks the device's claim of `email` declined and uses its links; false if there is no such open claim. */
  declineDeviceClaim(deviceId: string, email: string, now: number): Promise<boolean>;

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

  /** `purpose` defaults to 'registration'. */
  createConfirmation(c: Omit<ConfirmationRecord, 'usedAt' | 'purpose'> & { purpose?: ConfirmationRecord['purpose'] }): Promise<void>;
  getConfirmation(idHash: string): Promise<ConfirmationRecord | undefined>;
  /**
   * Confirmations (of either purpose unless one is given) created at or after `since`, all or of one
   * email or of one device (rate limits).
   */
  countConfirmations(filter: { since: number; email?: string; deviceId?: string; purpose?: ConfirmationRecord['purpose'] }): Promise<number>;
  /**
   * Atomically: if the registration confirmation exists, is unused, has not expired at `now` and its
   * email has no user, creates the user with that email and marks every registration confirmation of
   * the email used. Otherwise changes nothing and says why (a claim link is 'unknown' here).
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
