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
import type { Selectable } from 'kysely';
import { migrateToLatest } from '../migrations/index.js';
import { DuplicateError } from '../store.js';
import type { DeviceRecord, NewDevice, RevokedTokenRecord, Store, TokenRecord, UserRecord } from '../store.js';

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
}

interface TokensTable {
  token_hash: string;
  user_id: string;
  created_at: number;
  expires_at: number;
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
  revoked_tokens: RevokedTokensTable;
}

/** Lower-cased and trimmed; an empty email is no email. */
function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** Runs an insert, turning a unique-key clash into DuplicateError. */
async function insertOrDuplicate(what: string, run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
  } catch (err) {
    if (isUniqueViolation(err)) throw new DuplicateError(`${what} already exists`, { cause: err });
    throw err;
  }
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
  };
}

function toToken(row: Selectable<TokensTable>): TokenRecord {
  return { tokenHash: row.token_hash, userId: row.user_id, createdAt: row.created_at, expiresAt: row.expires_at };
}

export class SqliteStore implements Store {
  readonly #db: Kysely<Tables>;

  private constructor(db: Kysely<Tables>) {
    this.#db = db;
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
    const email = device.email === null ? '' : normalizeEmail(device.email);
    const row = {
      id: device.id,
      name: device.name,
      email: email === '' ? null : email,
      secret_hash: device.secretHash,
      info: null,
      created_at: Date.now(),
      last_seen_at: null,
    };
    await insertOrDuplicate(`Device ${row.id}`, () => this.#db.insertInto('devices').values(row).execute());
    return toDevice(row);
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

  // Tokens

  async createToken(token: TokenRecord): Promise<void> {
    const row = { token_hash: token.tokenHash, user_id: token.userId, created_at: token.createdAt, expires_at: token.expiresAt };
    await insertOrDuplicate('Token', () => this.#db.insertInto('tokens').values(row).execute());
  }

  async getToken(tokenHash: string): Promise<TokenRecord | undefined> {
    const row = await this.#db.selectFrom('tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
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
