/**
 * SqlStore's email confirmations (table `email_confirmations`): registration links, and the one
 * transaction that turns a confirmed link into a user.
 */
import type { Kysely, Selectable } from 'kysely';
import type { ConfirmationRecord, ConfirmResult, Store } from '../store.js';
import type { SqlDialect } from './dialect.js';
import { insertOrDuplicate } from './duplicate.js';
import { normalizeEmail } from './email.js';
import type { ConfirmationsTable, UsersTable } from './tables.js';
import { toUser } from './users-tokens.js';

function toConfirmation(row: Selectable<ConfirmationsTable>): ConfirmationRecord {
  return {
    idHash: row.id_hash, purpose: row.purpose === 'claim' ? 'claim' : 'registration',
    email: row.email, deviceId: row.device_id, createdAt: row.created_at, expiresAt: row.expires_at, usedAt: row.used_at,
  };
}

type ConfirmationMethods = 'createConfirmation' | 'getConfirmation' | 'countConfirmations' | 'confirmEmail' | 'deleteConfirmationsCreatedBefore';

export class SqlConfirmations implements Pick<Store, ConfirmationMethods> {
  readonly #db: Kysely<{ email_confirmations: ConfirmationsTable; users: UsersTable }>;

  readonly #dialect: SqlDialect;

  constructor(db: Kysely<{ email_confirmations: ConfirmationsTable; users: UsersTable }>, dialect: SqlDialect) {
    this.#db = db;
    this.#dialect = dialect;
  }

  async createConfirmation(c: Parameters<Store['createConfirmation']>[0]): Promise<void> {
    const row = {
      id_hash: c.idHash, email: normalizeEmail(c.email), device_id: c.deviceId, created_at: c.createdAt, expires_at: c.expiresAt, used_at: null,
      purpose: c.purpose === 'claim' ? 'claim' : null,
    };
    await insertOrDuplicate(this.#dialect, 'Confirmation', () => this.#db.insertInto('email_confirmations').values(row).execute());
  }

  async getConfirmation(idHash: string): Promise<ConfirmationRecord | undefined> {
    const row = await this.#db.selectFrom('email_confirmations').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
    return row && toConfirmation(row);
  }

  async countConfirmations(filter: Parameters<Store['countConfirmations']>[0]): Promise<number> {
    let q = this.#db.selectFrom('email_confirmations').select((eb) => eb.fn.countAll<number>().as('n')).where('created_at', '>=', filter.since);
    if (filter.email !== undefined) q = q.where('email', '=', normalizeEmail(filter.email));
    if (filter.deviceId !== undefined) q = q.where('device_id', '=', filter.deviceId);
    if (filter.purpose !== undefined) q = filter.purpose === 'claim' ? q.where('purpose', '=', 'claim') : q.where('purpose', 'is', null);
    const row = await q.executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async confirmEmail(idHash: string, user: { id: string; passwordHash: string }, now: number): Promise<ConfirmResult> {
    return this.#dialect.transaction(this.#db, async (trx) => {
      const c = await trx.selectFrom('email_confirmations').selectAll().where('id_hash', '=', idHash).where('purpose', 'is', null).executeTakeFirst();
      if (!c) return { status: 'unknown' };
      if (c.used_at !== null) return { status: 'used', email: c.email };
      if (c.expires_at <= now) return { status: 'expired', email: c.email };
      const existing = await trx.selectFrom('users').select('id').where('email', '=', c.email).executeTakeFirst();
      if (existing) return { status: 'registered', email: c.email };
      const row = { id: user.id, email: c.email, password_hash: user.passwordHash, created_at: now };
      await trx.insertInto('users').values(row).execute();
      await trx.updateTable('email_confirmations').set({ used_at: now }).where('email', '=', c.email).where('used_at', 'is', null).where('purpose', 'is', null).execute();
      return { status: 'confirmed', user: toUser(row) };
    });
  }

  async deleteConfirmationsCreatedBefore(createdBefore: number): Promise<number> {
    const result = await this.#db.deleteFrom('email_confirmations').where('created_at', '<', createdBefore).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
