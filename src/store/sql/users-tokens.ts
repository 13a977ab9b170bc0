/**
 * SqlStore's users and their access tokens (tables `users`, `tokens`).
 */
import type { Kysely, Selectable } from 'kysely';
import type { Store, TokenInfo, TokenRecord, UserRecord } from '../store.js';
import type { SqlDialect } from './dialect.js';
import { insertOrDuplicate } from './duplicate.js';
import { normalizeEmail } from './email.js';
import type { TokensTable, UsersTable } from './tables.js';

/** SQLite caps bound parameters per statement (32,766 since 3.32), PostgreSQL at 65,535; delete in slices well under both. */
const DELETE_BATCH = 500;

export function toUser(row: Selectable<UsersTable>): UserRecord {
  return { id: row.id, email: row.email, passwordHash: row.password_hash, createdAt: row.created_at };
}

function toToken(row: Omit<Selectable<TokensTable>, 'last_used_at'>): TokenRecord {
  return { tokenHash: row.token_hash, userId: row.user_id, createdAt: row.created_at, expiresAt: row.expires_at };
}

type UserTokenMethods = 'createUser' | 'getUserByEmail' | 'getUserById' | 'listUsers' | 'setUserPassword'
  | 'createToken' | 'getToken' | 'deleteToken' | 'deleteExpiredTokens' | 'listTokensByUser' | 'touchToken' | 'deleteTokens';

export class SqlUsers implements Pick<Store, UserTokenMethods> {
  readonly #db: Kysely<{ users: UsersTable; tokens: TokensTable }>;

  readonly #dialect: SqlDialect;

  constructor(db: Kysely<{ users: UsersTable; tokens: TokensTable }>, dialect: SqlDialect) {
    this.#db = db;
    this.#dialect = dialect;
  }

  async createUser(user: { id: string; email: string; passwordHash: string }): Promise<UserRecord> {
    const row = { id: user.id, email: normalizeEmail(user.email), password_hash: user.passwordHash, created_at: Date.now() };
    await insertOrDuplicate(this.#dialect, `User ${row.email}`, () => this.#db.insertInto('users').values(row).execute());
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

  async createToken(token: TokenRecord): Promise<void> {
    const row = { token_hash: token.tokenHash, user_id: token.userId, created_at: token.createdAt, expires_at: token.expiresAt };
    await insertOrDuplicate(this.#dialect, 'Token', () => this.#db.insertInto('tokens').values(row).execute());
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
}
