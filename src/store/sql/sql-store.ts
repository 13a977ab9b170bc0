/**
 * The Store on an SQL database through Kysely, one part per concern (users-tokens.ts, devices.ts,
 * device-claims.ts, confirmations.ts, revoked-tokens.ts, factory-keys.ts, oauth.ts), each on the same
 * Kysely instance. The queries are portable; what differs per database is the SqlDialect.
 * SqliteStore (src/store/sqlite/) and PostgresStore (src/store/postgres/) open their database and
 * extend this class.
 */
import type { Kysely } from 'kysely';
import { migrateToLatest } from '../migrations/index.js';
import type { OAuthStore } from '../oauth-store.js';
import type { FactoryKeyRecord, Store } from '../store.js';
import { SqlConfirmations } from './confirmations.js';
import { SqlDeviceClaims } from './device-claims.js';
import { SqlDevices } from './devices.js';
import type { SqlDialect } from './dialect.js';
import { insertOrDuplicateValue } from './duplicate.js';
import { FactoryKeyQueries } from './factory-keys.js';
import { SqlOAuth, type OAuthTables } from './oauth.js';
import { SqlRevokedTokens } from './revoked-tokens.js';
import type { ConfirmationsTable, DeviceClaimsTable, DevicesTable, FactoryKeysTable, RevokedTokensTable, TokensTable, UsersTable } from './tables.js';
import { SqlUsers } from './users-tokens.js';

export interface StoreTables {
  users: UsersTable;
  devices: DevicesTable;
  tokens: TokensTable;
  factory_keys: FactoryKeysTable;
  email_confirmations: ConfirmationsTable;
  revoked_tokens: RevokedTokensTable;
  device_claims: DeviceClaimsTable;
}

export class SqlStore implements Store {
  readonly #db: Kysely<StoreTables>;
  readonly #dialect: SqlDialect;
  readonly #users: SqlUsers;
  readonly #devices: SqlDevices;
  readonly #claims: SqlDeviceClaims;
  readonly #confirmations: SqlConfirmations;
  readonly #revoked: SqlRevokedTokens;
  readonly #factoryKeys: FactoryKeyQueries;
  readonly #oauth: SqlOAuth;

  protected constructor(db: Kysely<StoreTables>, dialect: SqlDialect) {
    this.#db = db;
    this.#dialect = dialect;
    // Kysely is invariant in its table map; each part sees only its own tables.
    const part = <T>() => db as unknown as Kysely<T>;
    this.#users = new SqlUsers(part<{ users: UsersTable; tokens: TokensTable }>(), dialect);
    this.#devices = new SqlDevices(part<{ devices: DevicesTable; users: UsersTable; device_claims: DeviceClaimsTable }>(), dialect);
    this.#claims = new SqlDeviceClaims(part<{ device_claims: DeviceClaimsTable; devices: DevicesTable; email_confirmations: ConfirmationsTable }>(), dialect);
    this.#confirmations = new SqlConfirmations(part<{ email_confirmations: ConfirmationsTable; users: UsersTable }>(), dialect);
    this.#revoked = new SqlRevokedTokens(part<{ revoked_tokens: RevokedTokensTable }>());
    this.#factoryKeys = new FactoryKeyQueries(part<{ factory_keys: FactoryKeysTable }>());
    this.#oauth = new SqlOAuth(part<OAuthTables>(), dialect);
  }

  /**
   * The database, for the subsystems that keep their tables in it (the MQTT broker's persistence, the
   * token-signing key). This store owns it: migrate() creates every subsystem's tables and close() closes it.
   */
  get db(): Kysely<unknown> {
    return this.#db as Kysely<unknown>;
  }

  async migrate(): Promise<void> {
    await migrateToLatest(this.#db);
  }

  async close(): Promise<void> {
    await this.#db.destroy();
  }

  // Users and tokens (users-tokens.ts)

  createUser: Store['createUser'] = (u) => this.#users.createUser(u);
  getUserByEmail: Store['getUserByEmail'] = (email) => this.#users.getUserByEmail(email);
  getUserById: Store['getUserById'] = (id) => this.#users.getUserById(id);
  listUsers: Store['listUsers'] = () => this.#users.listUsers();
  setUserPassword: Store['setUserPassword'] = (id, hash) => this.#users.setUserPassword(id, hash);
  createToken: Store['createToken'] = (t) => this.#users.createToken(t);
  getToken: Store['getToken'] = (h) => this.#users.getToken(h);
  deleteToken: Store['deleteToken'] = (h) => this.#users.deleteToken(h);
  deleteExpiredTokens: Store['deleteExpiredTokens'] = (now) => this.#users.deleteExpiredTokens(now);
  listTokensByUser: Store['listTokensByUser'] = (u, now) => this.#users.listTokensByUser(u, now);
  touchToken: Store['touchToken'] = (h, at) => this.#users.touchToken(h, at);
  deleteTokens: Store['deleteTokens'] = (hs) => this.#users.deleteTokens(hs);

  // Devices (devices.ts)

  createDevice: Store['createDevice'] = (d) => this.#devices.createDevice(d);
  createDevices: Store['createDevices'] = (ds) => this.#devices.createDevices(ds);
  setDeviceRevoked: Store['setDeviceRevoked'] = (id, at) => this.#devices.setDeviceRevoked(id, at);
  getDevice: Store['getDevice'] = (id) => this.#devices.getDevice(id);
  listDevices: Store['listDevices'] = () => this.#devices.listDevices();
  listDevicesByEmail: Store['listDevicesByEmail'] = (email) => this.#devices.listDevicesByEmail(email);
  updateDeviceInfo: Store['updateDeviceInfo'] = (id, info, at) => this.#devices.updateDeviceInfo(id, info, at);
  touchDevice: Store['touchDevice'] = (id, at) => this.#devices.touchDevice(id, at);
  deleteDevice: Store['deleteDevice'] = (id) => this.#devices.deleteDevice(id);

  // Pending device ownership (device-claims.ts)

  getDeviceClaim: Store['getDeviceClaim'] = (id) => this.#claims.getDeviceClaim(id);
  listDeviceClaims: Store['listDeviceClaims'] = (email) => this.#claims.listDeviceClaims(email);
  acceptDeviceClaim: Store['acceptDeviceClaim'] = (id, email, now) => this.#claims.acceptDeviceClaim(id, email, now);
  declineDeviceClaim: Store['declineDeviceClaim'] = (id, email, now) => this.#claims.declineDeviceClaim(id, email, now);

  // Factory keys (queries in factory-keys.ts)

  createFactoryKey(key: { id: string; name: string; keyHash: string; derivationKey: string }): Promise<FactoryKeyRecord> {
    return insertOrDuplicateValue(this.#dialect, `Factory key ${key.id}`, () => this.#factoryKeys.create(key, Date.now()));
  }

  getFactoryKey(id: string): Promise<FactoryKeyRecord | undefined> {
    return this.#factoryKeys.get(id);
  }

  getFactoryKeyByHash(keyHash: string): Promise<FactoryKeyRecord | undefined> {
    return this.#factoryKeys.getByHash(keyHash);
  }

  listFactoryKeys(): Promise<FactoryKeyRecord[]> {
    return this.#factoryKeys.list();
  }

  rotateFactoryKey(id: string, keyHash: string, at: number): Promise<boolean> {
    return this.#factoryKeys.rotate(id, keyHash, at);
  }

  revokeFactoryKey(id: string, at: number): Promise<boolean> {
    return this.#factoryKeys.revoke(id, at);
  }

  // Email confirmations (confirmations.ts)

  createConfirmation: Store['createConfirmation'] = (c) => this.#confirmations.createConfirmation(c);
  getConfirmation: Store['getConfirmation'] = (h) => this.#confirmations.getConfirmation(h);
  countConfirmations: Store['countConfirmations'] = (f) => this.#confirmations.countConfirmations(f);
  confirmEmail: Store['confirmEmail'] = (h, u, now) => this.#confirmations.confirmEmail(h, u, now);
  deleteConfirmationsCreatedBefore: Store['deleteConfirmationsCreatedBefore'] = (before) => this.#confirmations.deleteConfirmationsCreatedBefore(before);

  // Revoked tokens (revoked-tokens.ts)

  addRevokedTokens: Store['addRevokedTokens'] = (ts) => this.#revoked.addRevokedTokens(ts);
  listRevokedTokens: Store['listRevokedTokens'] = (u, now, limit) => this.#revoked.listRevokedTokens(u, now, limit);
  deleteExpiredRevokedTokens: Store['deleteExpiredRevokedTokens'] = (now) => this.#revoked.deleteExpiredRevokedTokens(now);

  // OAuth provider (oauth.ts)

  createOAuthClient: OAuthStore['createOAuthClient'] = (c) => this.#oauth.createOAuthClient(c);
  getOAuthClient: OAuthStore['getOAuthClient'] = (id) => this.#oauth.getOAuthClient(id);
  listOAuthClients: OAuthStore['listOAuthClients'] = () => this.#oauth.listOAuthClients();
  deleteOAuthClient: OAuthStore['deleteOAuthClient'] = (id, now) => this.#oauth.deleteOAuthClient(id, now);
  saveOAuthGrant: OAuthStore['saveOAuthGrant'] = (g) => this.#oauth.saveOAuthGrant(g);
  getOAuthGrant: OAuthStore['getOAuthGrant'] = (u, c) => this.#oauth.getOAuthGrant(u, c);
  listOAuthGrantsByUser: OAuthStore['listOAuthGrantsByUser'] = (u) => this.#oauth.listOAuthGrantsByUser(u);
  deleteOAuthGrant: OAuthStore['deleteOAuthGrant'] = (u, c, now) => this.#oauth.deleteOAuthGrant(u, c, now);
  createOAuthCode: OAuthStore['createOAuthCode'] = (c) => this.#oauth.createOAuthCode(c);
  getOAuthCode: OAuthStore['getOAuthCode'] = (h) => this.#oauth.getOAuthCode(h);
  redeemOAuthCode: OAuthStore['redeemOAuthCode'] = (h, now, t) => this.#oauth.redeemOAuthCode(h, now, t);
  getOAuthToken: OAuthStore['getOAuthToken'] = (h) => this.#oauth.getOAuthToken(h);
  rotateOAuthRefreshToken: OAuthStore['rotateOAuthRefreshToken'] = (h, now, t) => this.#oauth.rotateOAuthRefreshToken(h, now, t);
  findOAuthFamily: OAuthStore['findOAuthFamily'] = (f) => this.#oauth.findOAuthFamily(f);
  revokeOAuthFamily: OAuthStore['revokeOAuthFamily'] = (f, now) => this.#oauth.revokeOAuthFamily(f, now);
  listOAuthRevocationsSince: OAuthStore['listOAuthRevocationsSince'] = (since) => this.#oauth.listOAuthRevocationsSince(since);
  deleteExpiredOAuth: OAuthStore['deleteExpiredOAuth'] = (now, before) => this.#oauth.deleteExpiredOAuth(now, before);
}
