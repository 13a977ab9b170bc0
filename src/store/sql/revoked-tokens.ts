/**
 * SqlStore's revoked tokens (table `revoked_tokens`): kept until they expire, so agents that check
 * tokens offline (LAN access) learn of revocations even when they connect later.
 */
import type { Kysely } from 'kysely';
import type { RevokedTokenRecord, Store } from '../store.js';
import type { RevokedTokensTable } from './tables.js';

export class SqlRevokedTokens implements Pick<Store, 'addRevokedTokens' | 'listRevokedTokens' | 'deleteExpiredRevokedTokens'> {
  readonly #db: Kysely<{ revoked_tokens: RevokedTokensTable }>;

  constructor(db: Kysely<{ revoked_tokens: RevokedTokensTable }>) {
    this.#db = db;
  }

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
