/**
 * Persistent state of the hub. The embedded implementation is SQLite (`SqliteStore`); PostgreSQL comes
 * with the scale-out. Every implementation passes test/store-contract.test.ts.
 *
 * Secrets never reach a Store in clear: passwords arrive as scrypt hashes, device secrets and access
 * tokens as SHA-256 hashes (they are 256-bit random values, so a fast hash is enough).
 */
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
}

export interface TokenRecord {
  tokenHash: string;
  userId: string;
  createdAt: number;
  expiresAt: number;
}

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
}

export interface Store {
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

  createToken(token: TokenRecord): Promise<void>;
  getToken(tokenHash: string): Promise<TokenRecord | undefined>;
  deleteToken(tokenHash: string): Promise<void>;
  /** Removes expired tokens; returns how many. */
  deleteExpiredTokens(now: number): Promise<number>;

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
}
