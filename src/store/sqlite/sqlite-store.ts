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
import type { ColumnType, Selectable } from 'kysely';
import { migrateToLatest } from '../migrations/index.js';
import { DuplicateError } from '../store.js';
import { insertOrDuplicate, insertOrDuplicateValue, isUniqueViolation } from './duplicate.js';
import type { ConfirmationRecord, ConfirmResult, DeviceRecord, FactoryKeyRecord, NewDevice, RevokedTokenRecord, Store, TokenInfo, TokenRecord, UserRecord } from '../store.js';
import type { OAuthStore } from '../oauth-store.js';
import { FactoryKeyQueries, type FactoryKeysTable } from './factory-keys.js';
import { SqliteOAuth, type OAuthTables } from './sqlite-oauth.js';

interface UsersTable {
  id: string;
  email: string;
  password_hash: string;
  created_at: number;
}

interface DevicesTable {
  id: string;
  name: string;
  email: string | null;
  secret_hash: string;
  info: string | null;
  created_at: number;
  last_seen_at: number | null;
  factory_key_id: string | null;
  revoked_at: number | null;
}

interface TokensTable {
  token_hash: string;
  user_id: string;
  created_at: number;
  expires_at: number;
  last_used_at: ColumnType<number | null, number | null | undefined, number | null>;
}

interface ConfirmationsTable {
  id_hash: string;
  email: string;
  device_id: string | null;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

interface RevokedTokensTable {
  token_hash: string;
  user_id: string;
  expires_at: number;
  revoked_at: number;
}

interface Tables {
  users: UsersTable;
  devices: DevicesTable;
  tokens: TokensTable;
  factory_keys: FactoryKeysTable;
  email_confirmations: ConfirmationsTable;
  revoked_tokens: RevokedTokensTable;
}

/** SQLite caps bound parameters per statement (32,766 since 3.32); delete in slices well under it. */
const DELETE_BATCH = 500;

/** Lower-cased and trimmed; an empty email is no email. */
function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

function toUser(row: Selectable<UsersTable>): UserRecord {
  return { id: row.id, email: row.email, passwordHash: row.password_hash, createdAt: row.created_at };
}

function parseInfo(text: string | null): Record<string, unknown> | null {
  if (text === null) return null;
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function toDevice(row: Selectable<DevicesTable>): DeviceRecord {
  return {
    id: row.id,
    name: row.name,
    email: row.email,
    secretHash: row.secret_hash,
    info: parseInfo(row.info),
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
    factoryKeyId: row.factory_key_id,
    revokedAt: row.revoked_at,
  };
}

function toToken(row: Omit<Selectable<TokensTable>, 'last_used_at'>): TokenRecord {
  return { tokenHash: row.token_hash, userId: row.user_id, createdAt: row.created_at, expiresAt: row.expires_at };
}

/** The row a new device becomes. */
function deviceRow(device: NewDevice, now: number): Selectable<DevicesTable> {
  const email = device.email === null ? '' : normalizeEmail(device.email);
  return {
    id: device.id,
    name: device.name,
    email: email === '' ? null : email,
    secret_hash: device.secretHash,
    info: null,
    created_at: now,
    last_seen_at: null,
    factory_key_id: device.factoryKeyId ?? null,
    revoked_at: null,
  };
}

function toConfirmation(row: Selectable<ConfirmationsTable>): ConfirmationRecord {
  return { idHash: row.id_hash, email: row.email, deviceId: row.device_id, createdAt: row.created_at, expiresAt: row.expires_at, usedAt: row.used_at };
}

export class SqliteStore implements Store {
  readonly #db: Kysely<Tables>;
  readonly #factoryKeys: FactoryKeyQueries;
  readonly #oauth: SqliteOAuth;

  private constructor(db: Kysely<Tables>) {
    this.#db = db;
    // Kysely is invariant in its table map; each part sees only its own tables.
    this.#factoryKeys = new FactoryKeyQueries(db as unknown as Kysely<{ factory_keys: FactoryKeysTable }>);
    this.#oauth = new SqliteOAuth(db as unknown as Kysely<OAuthTables>);
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

  // Users

  async createUser(user: { id: string; email: string; passwordHash: string }): Promise<UserRecord> {
    const row = { id: user.id, email: normalizeEmail(user.email), password_hash: user.passwordHash, created_at: Date.now() };
    await insertOrDuplicate(`User ${row.email}`, () => this.#db.insertInto('users').values(row).execute());
    return toUser(row);
  }

  async getUserByEmail(email: string): Promise<UserRecord | undefined> {
    const row = await this.#db.selectFrom('users').selectAll().where('email', '=', normalizeEmail(email)).executeTakeFirst();
    return row && toUser(row);
  }

  async getUserById(id: string): Promise<UserRecord | undefined> {
    const row = await this.#db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toUser(row);
  }

  async listUsers(): Promise<UserRecord[]> {
    const rows = await this.#db.selectFrom('users').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(toUser);
  }

  async setUserPassword(id: string, passwordHash: string): Promise<void> {
    await this.#db.updateTable('users').set({ password_hash: passwordHash }).where('id', '=', id).execute();
  }

  // Devices

  async createDevice(device: NewDevice): Promise<DeviceRecord> {
    const row = deviceRow(device, Date.now());
    await insertOrDuplicate(`Device ${row.id}`, () => this.#db.insertInto('devices').values(row).execute());
    return toDevice(row);
  }

  async createDevices(devices: readonly NewDevice[]): Promise<DeviceRecord[]> {
    const now = Date.now();
    const rows = devices.map((d) => deviceRow(d, now));
    await this.#db.transaction().execute(async (trx) => {
      for (const row of rows) {
        try {
          await trx.insertInto('devices').values(row).execute();
        } catch (err) {
          // Thrown out of the transaction callback, so Kysely rolls every insert back.
          if (isUniqueViolation(err)) throw new DuplicateError(`Device ${row.id} already exists`, { cause: err, key: row.id });
          throw err;
        }
      }
    });
    return rows.map(toDevice);
  }

  async setDeviceRevoked(id: string, revokedAt: number | null): Promise<boolean> {
    const result = await this.#db.updateTable('devices').set({ revoked_at: revokedAt }).where('id', '=', id).executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async getDevice(id: string): Promise<DeviceRecord | undefined> {
    const row = await this.#db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toDevice(row);
  }

  async listDevices(): Promise<DeviceRecord[]> {
    const rows = await this.#db.selectFrom('devices').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(toDevice);
  }

  async listDevicesByEmail(email: string): Promise<DeviceRecord[]> {
    const normalized = normalizeEmail(email);
    if (normalized === '') return [];
    const rows = await this.#db
      .selectFrom('devices')
      .selectAll()
      .where('email', '=', normalized)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toDevice);
  }

  async updateDeviceInfo(id: string, info: Record<string, unknown>, seenAt: number): Promise<void> {
    const email = typeof info['email'] === 'string' ? normalizeEmail(info['email']) : '';
    await this.#db
      .updateTable('devices')
      .set({ info: JSON.stringify(info), last_seen_at: seenAt, ...(email === '' ? {} : { email }) })
      .where('id', '=', id)
      .execute();
  }

  async touchDevice(id: string, seenAt: number): Promise<void> {
    await this.#db.updateTable('devices').set({ last_seen_at: seenAt }).where('id', '=', id).execute();
  }

  async deleteDevice(id: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('devices').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

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

  // Tokens

  async createToken(token: TokenRecord): Promise<void> {
    const row = { token_hash: token.tokenHash, user_id: token.userId, created_at: token.createdAt, expires_at: token.expiresAt };
    await insertOrDuplicate('Token', () => this.#db.insertInto('tokens').values(row).execute());
  }

  async getToken(tokenHash: string): Promise<TokenRecord | undefined> {
    const row = await this.#db.selectFrom('tokens').select(['token_hash', 'user_id', 'created_at', 'expires_at']).where('token_hash', '=', tokenHash).executeTakeFirst();
    return row && toToken(row);
  }

  async deleteToken(tokenHash: string): Promise<void> {
    await this.#db.deleteFrom('tokens').where('token_hash', '=', tokenHash).execute();
  }

  /** A token is valid while `now < expiresAt`, so one whose `expiresAt` has been reached is removed. */
  async deleteExpiredTokens(now: number): Promise<number> {
    const result = await this.#db.deleteFrom('tokens').where('expires_at', '<=', now).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async listTokensByUser(userId: string, now: number): Promise<TokenInfo[]> {
    const rows = await this.#db
      .selectFrom('tokens')
      .selectAll()
      .where('user_id', '=', userId)
      .where('expires_at', '>', now)
      .orderBy('created_at', 'desc')
      .orderBy('token_hash')
      .execute();
    return rows.map((r) => ({ ...toToken(r), lastUsedAt: r.last_used_at }));
  }

  async touchToken(tokenHash: string, usedAt: number): Promise<void> {
    await this.#db.updateTable('tokens').set({ last_used_at: usedAt }).where('token_hash', '=', tokenHash).execute();
  }

  async deleteTokens(tokenHashes: readonly string[]): Promise<number> {
    let n = 0;
    for (let i = 0; i < tokenHashes.length; i += DELETE_BATCH) {
      const slice = tokenHashes.slice(i, i + DELETE_BATCH);
      const result = await this.#db.deleteFrom('tokens').where('token_hash', 'in', slice).executeTakeFirst();
      n += Number(result.numDeletedRows);
    }
    return n;
  }

  // Email confirmations

  async createConfirmation(c: Omit<ConfirmationRecord, 'usedAt'>): Promise<void> {
    const row = { id_hash: c.idHash, email: normalizeEmail(c.email), device_id: c.deviceId, created_at: c.createdAt, expires_at: c.expiresAt, used_at: null };
    await insertOrDuplicate('Confirmation', () => this.#db.insertInto('email_confirmations').values(row).execute());
  }

  async getConfirmation(idHash: string): Promise<ConfirmationRecord | undefined> {
    const row = await this.#db.selectFrom('email_confirmations').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
    return row && toConfirmation(row);
  }

  async countConfirmations(filter: { since: number; email?: string; deviceId?: string }): Promise<number> {
    let q = this.#db.selectFrom('email_confirmations').select((eb) => eb.fn.countAll<number>().as('n')).where('created_at', '>=', filter.since);
    if (filter.email !== undefined) q = q.where('email', '=', normalizeEmail(filter.email));
    if (filter.deviceId !== undefined) q = q.where('device_id', '=', filter.deviceId);
    const row = await q.executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async confirmEmail(idHash: string, user: { id: string; passwordHash: string }, now: number): Promise<ConfirmResult> {
    return this.#db.transaction().execute(async (trx) => {
      const c = await trx.selectFrom('email_confirmations').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
      if (!c) return { status: 'unknown' };
      if (c.used_at !== null) return { status: 'used', email: c.email };
      if (c.expires_at <= now) return { status: 'expired', email: c.email };
      const existing = await trx.selectFrom('users').select('id').where('email', '=', c.email).executeTakeFirst();
      if (existing) return { status: 'registered', email: c.email };
      const row = { id: user.id, email: c.email, password_hash: user.passwordHash, created_at: now };
      await trx.insertInto('users').values(row).execute();
      await trx.updateTable('email_confirmations').set({ used_at: now }).where('email', '=', c.email).where('used_at', 'is', null).execute();
      return { status: 'confirmed', user: toUser(row) };
    });
  }

  async deleteConfirmationsCreatedBefore(createdBefore: number): Promise<number> {
    const result = await this.#db.deleteFrom('email_confirmations').where('created_at', '<', createdBefore).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

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

  // Revoked tokens

  async addRevokedTokens(tokens: RevokedTokenRecord[]): Promise<void> {
    if (tokens.length === 0) return;
    const rows = tokens.map((t) => ({ token_hash: t.tokenHash, user_id: t.userId, expires_at: t.expiresAt, revoked_at: t.revokedAt }));
    await this.#db.insertInto('revoked_tokens').values(rows).onConflict((oc) => oc.column('token_hash').doNothing()).execute();
  }

  async listRevokedTokens(userId: string, now: number, limit: number): Promise<RevokedTokenRecord[]> {
    const rows = await this.#db.selectFrom('revoked_tokens').selectAll()
      .where('user_id', '=', userId).where('expires_at', '>', now)
      .orderBy('revoked_at', 'desc').orderBy('token_hash').limit(limit).execute();
    return rows.map((r) => ({ tokenHash: r.token_hash, userId: r.user_id, expiresAt: r.expires_at, revokedAt: r.revoked_at }));
  }

  async deleteExpiredRevokedTokens(now: number): Promise<number> {
    const result = await this.#db.deleteFrom('revoked_tokens').where('expires_at', '<=', now).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
