/**
 * The embedded Store: one SQLite file through better-sqlite3, queried with Kysely.
 *
 * better-sqlite3 is synchronous; Kysely's SqliteDialect serialises queries on the single connection, so
 * statements never interleave. WAL lets readers in other processes (backups, the CLI) proceed meanwhile.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { migrateToLatest } from '../migrations/index.js';
import type { FactoryKeyRecord, Store } from '../store.js';
import type { OAuthStore } from '../oauth-store.js';
import { insertOrDuplicateValue } from './duplicate.js';
import { SqliteConfirmations, type ConfirmationsTable } from './confirmations.js';
import { SqliteDeviceClaims, type DeviceClaimsTable } from './device-claims.js';
import { SqliteDevices, type DevicesTable } from './devices.js';
import { FactoryKeyQueries, type FactoryKeysTable } from './factory-keys.js';
import { SqliteRevokedTokens, type RevokedTokensTable } from './revoked-tokens.js';
import { SqliteOAuth, type OAuthTables } from './sqlite-oauth.js';
import { SqliteUsers, type TokensTable, type UsersTable } from './users-tokens.js';

interface Tables {
  users: UsersTable;
  devices: DevicesTable;
  tokens: TokensTable;
  factory_keys: FactoryKeysTable;
  email_confirmations: ConfirmationsTable;
  revoked_tokens: RevokedTokensTable;
  device_claims: DeviceClaimsTable;
}

/**
 * The Store, one part per concern (users-tokens.ts, devices.ts, device-claims.ts, confirmations.ts, revoked-tokens.ts,
 * factory-keys.ts, sqlite-oauth.ts), each on the same Kysely instance: this class opens the database
 * and delegates.
 */
export class SqliteStore implements Store {
  readonly #db: Kysely<Tables>;
  readonly #users: SqliteUsers;
  readonly #devices: SqliteDevices;
  readonly #claims: SqliteDeviceClaims;
  readonly #confirmations: SqliteConfirmations;
  readonly #revoked: SqliteRevokedTokens;
  readonly #factoryKeys: FactoryKeyQueries;
  readonly #oauth: SqliteOAuth;

  private constructor(db: Kysely<Tables>) {
    this.#db = db;
    // Kysely is invariant in its table map; each part sees only its own tables.
    const part = <T>() => db as unknown as Kysely<T>;
    this.#users = new SqliteUsers(part<{ users: UsersTable; tokens: TokensTable }>());
    this.#devices = new SqliteDevices(part<{ devices: DevicesTable; users: UsersTable; device_claims: DeviceClaimsTable }>());
    this.#claims = new SqliteDeviceClaims(part<{ device_claims: DeviceClaimsTable; devices: DevicesTable; email_confirmations: ConfirmationsTable }>());
    this.#confirmations = new SqliteConfirmations(part<{ email_confirmations: ConfirmationsTable; users: UsersTable }>());
    this.#revoked = new SqliteRevokedTokens(part<{ revoked_tokens: RevokedTokensTable }>());
    this.#factoryKeys = new FactoryKeyQueries(part<{ factory_keys: FactoryKeysTable }>());
    this.#oauth = new SqliteOAuth(part<OAuthTables>());
  }

  /** Opens (creating if needed) the database file; `':memory:'` gives a private in-memory database. */
  static open(file: string): SqliteStore {
    const inMemory = file === ':memory:' || file === '';
    if (!inMemory) mkdirSync(dirname(file), { recursive: true });
    const sqlite = new Database(file);
    try {
      // WAL: readers never block the writer; NORMAL sync is durable in WAL mode except on power loss.
      if (!inMemory) sqlite.pragma('journal_mode = WAL');
      sqlite.pragma('synchronous = NORMAL');
      sqlite.pragma('busy_timeout = 5000');
      // Off by default in SQLite, per connection; tokens rely on ON DELETE CASCADE.
      sqlite.pragma('foreign_keys = ON');
    } catch (err) {
      sqlite.close();
      throw err;
    }
    return new SqliteStore(new Kysely<Tables>({ dialect: new SqliteDialect({ database: sqlite }) }));
  }

  /**
   * The database, for other subsystems that keep their tables in the same file (the MQTT broker's
   * SqliteMqttPersistence): one connection, so their statements and ours never contend for the lock.
   * This store owns it: migrate() creates every subsystem's tables and close() closes it.
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
    return insertOrDuplicateValue(`Factory key ${key.id}`, () => this.#factoryKeys.create(key, Date.now()));
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

  // OAuth provider (sqlite-oauth.ts)

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
