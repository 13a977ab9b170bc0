/**
 * The OAuth part of SqlStore (tables from migration 0006_oauth). Its transactions go through the
 * dialect, so the single-use exchanges (codes, refresh tokens) hold under concurrency on PostgreSQL too.
 */
import type { Kysely, Selectable, Transaction } from 'kysely';
import type {
  OAuthClientRecord,
  OAuthCodeRecord,
  OAuthGrantRecord,
  OAuthRevocation,
  OAuthStore,
  OAuthTokenKind,
  OAuthTokenRecord,
} from '../oauth-store.js';
import type { SqlDialect } from './dialect.js';
import { insertOrDuplicate } from './duplicate.js';

interface ClientsTable {
  id: string;
  name: string;
  redirect_uris: string;
  secret_hash: string | null;
  created_at: number;
}

interface GrantsTable {
  user_id: string;
  client_id: string;
  scope: string;
  created_at: number;
  updated_at: number;
}

interface CodesTable {
  code_hash: string;
  client_id: string;
  user_id: string;
  redirect_uri: string;
  scope: string;
  code_challenge: string | null;
  family_id: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

interface TokensTable {
  token_hash: string;
  kind: string;
  family_id: string;
  client_id: string;
  user_id: string;
  scope: string;
  created_at: number;
  expires_at: number;
  rotated_at: number | null;
}

interface RevocationsTable {
  client_id: string;
  user_id: string | null;
  family_id: string | null;
  revoked_at: number;
}

export interface OAuthTables {
  oauth_clients: ClientsTable;
  oauth_grants: GrantsTable;
  oauth_codes: CodesTable;
  oauth_tokens: TokensTable;
  oauth_revocations: RevocationsTable;
}

function parseUris(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

function toClient(r: Selectable<ClientsTable>): OAuthClientRecord {
  return { id: r.id, name: r.name, redirectUris: parseUris(r.redirect_uris), secretHash: r.secret_hash, createdAt: r.created_at };
}

function toGrant(r: Selectable<GrantsTable>): OAuthGrantRecord {
  return { userId: r.user_id, clientId: r.client_id, scope: r.scope, createdAt: r.created_at, updatedAt: r.updated_at };
}

function toCode(r: Selectable<CodesTable>): OAuthCodeRecord {
  return {
    codeHash: r.code_hash,
    clientId: r.client_id,
    userId: r.user_id,
    redirectUri: r.redirect_uri,
    scope: r.scope,
    codeChallenge: r.code_challenge,
    familyId: r.family_id,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    usedAt: r.used_at,
  };
}

function toToken(r: Selectable<TokensTable>): OAuthTokenRecord {
  return {
    tokenHash: r.token_hash,
    kind: r.kind as OAuthTokenKind,
    familyId: r.family_id,
    clientId: r.client_id,
    userId: r.user_id,
    scope: r.scope,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    rotatedAt: r.rotated_at,
  };
}

function tokenRow(t: OAuthTokenRecord): TokensTable {
  return {
    token_hash: t.tokenHash,
    kind: t.kind,
    family_id: t.familyId,
    client_id: t.clientId,
    user_id: t.userId,
    scope: t.scope,
    created_at: t.createdAt,
    expires_at: t.expiresAt,
    rotated_at: t.rotatedAt,
  };
}

async function insertTokens(trx: Transaction<OAuthTables>, tokens: OAuthTokenRecord[]): Promise<void> {
  if (tokens.length > 0) await trx.insertInto('oauth_tokens').values(tokens.map(tokenRow)).execute();
}

export class SqlOAuth implements OAuthStore {
  constructor(private readonly db: Kysely<OAuthTables>, private readonly dialect: SqlDialect) {}

  async createOAuthClient(c: OAuthClientRecord): Promise<void> {
    const row = { id: c.id, name: c.name, redirect_uris: JSON.stringify(c.redirectUris), secret_hash: c.secretHash, created_at: c.createdAt };
    await insertOrDuplicate(this.dialect, `OAuth client ${c.id}`, () => this.db.insertInto('oauth_clients').values(row).execute());
  }

  async getOAuthClient(id: string): Promise<OAuthClientRecord | undefined> {
    const row = await this.db.selectFrom('oauth_clients').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toClient(row);
  }

  async listOAuthClients(): Promise<OAuthClientRecord[]> {
    const rows = await this.db.selectFrom('oauth_clients').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(toClient);
  }

  deleteOAuthClient(id: string, now: number): Promise<boolean> {
    return this.dialect.transaction(this.db, async (trx) => {
      // Children first: the foreign keys cascade too, but only where the pragma is on.
      await trx.deleteFrom('oauth_tokens').where('client_id', '=', id).execute();
      await trx.deleteFrom('oauth_codes').where('client_id', '=', id).execute();
      await trx.deleteFrom('oauth_grants').where('client_id', '=', id).execute();
      const r = await trx.deleteFrom('oauth_clients').where('id', '=', id).executeTakeFirst();
      if (r.numDeletedRows === 0n) return false;
      await trx.insertInto('oauth_revocations').values({ client_id: id, user_id: null, family_id: null, revoked_at: now }).execute();
      return true;
    });
  }

  async saveOAuthGrant(g: OAuthGrantRecord): Promise<void> {
    await this.db
      .insertInto('oauth_grants')
      .values({ user_id: g.userId, client_id: g.clientId, scope: g.scope, created_at: g.createdAt, updated_at: g.updatedAt })
      .onConflict((oc) => oc.columns(['user_id', 'client_id']).doUpdateSet({ scope: g.scope, updated_at: g.updatedAt }))
      .execute();
  }

  async getOAuthGrant(userId: string, clientId: string): Promise<OAuthGrantRecord | undefined> {
    const row = await this.db.selectFrom('oauth_grants').selectAll().where('user_id', '=', userId).where('client_id', '=', clientId).executeTakeFirst();
    return row && toGrant(row);
  }

  async listOAuthGrantsByUser(userId: string): Promise<OAuthGrantRecord[]> {
    const rows = await this.db.selectFrom('oauth_grants').selectAll().where('user_id', '=', userId).orderBy('created_at').orderBy('client_id').execute();
    return rows.map(toGrant);
  }

  deleteOAuthGrant(userId: string, clientId: string, now: number): Promise<boolean> {
    return this.dialect.transaction(this.db, async (trx) => {
      await trx.deleteFrom('oauth_tokens').where('user_id', '=', userId).where('client_id', '=', clientId).execute();
      await trx.deleteFrom('oauth_codes').where('user_id', '=', userId).where('client_id', '=', clientId).execute();
      const r = await trx.deleteFrom('oauth_grants').where('user_id', '=', userId).where('client_id', '=', clientId).executeTakeFirst();
      if (r.numDeletedRows === 0n) return false;
      await trx.insertInto('oauth_revocations').values({ client_id: clientId, user_id: userId, family_id: null, revoked_at: now }).execute();
      return true;
    });
  }

  async createOAuthCode(c: OAuthCodeRecord): Promise<void> {
    const row: CodesTable = {
      code_hash: c.codeHash,
      client_id: c.clientId,
      user_id: c.userId,
      redirect_uri: c.redirectUri,
      scope: c.scope,
      code_challenge: c.codeChallenge,
      family_id: c.familyId,
      created_at: c.createdAt,
      expires_at: c.expiresAt,
      used_at: c.usedAt,
    };
    await insertOrDuplicate(this.dialect, 'Authorization code', () => this.db.insertInto('oauth_codes').values(row).execute());
  }

  async getOAuthCode(codeHash: string): Promise<OAuthCodeRecord | undefined> {
    const row = await this.db.selectFrom('oauth_codes').selectAll().where('code_hash', '=', codeHash).executeTakeFirst();
    return row && toCode(row);
  }

  redeemOAuthCode(codeHash: string, now: number, tokens: OAuthTokenRecord[]): Promise<boolean> {
    return this.dialect.transaction(this.db, async (trx) => {
      const r = await trx.updateTable('oauth_codes').set({ used_at: now }).where('code_hash', '=', codeHash).where('used_at', 'is', null).executeTakeFirst();
      if (r.numUpdatedRows === 0n) return false;
      await insertTokens(trx, tokens);
      return true;
    });
  }

  async getOAuthToken(tokenHash: string): Promise<OAuthTokenRecord | undefined> {
    const row = await this.db.selectFrom('oauth_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
    return row && toToken(row);
  }

  rotateOAuthRefreshToken(tokenHash: string, now: number, tokens: OAuthTokenRecord[]): Promise<boolean> {
    return this.dialect.transaction(this.db, async (trx) => {
      const r = await trx
        .updateTable('oauth_tokens')
        .set({ rotated_at: now })
        .where('token_hash', '=', tokenHash)
        .where('kind', '=', 'refresh')
        .where('rotated_at', 'is', null)
        .executeTakeFirst();
      if (r.numUpdatedRows === 0n) return false;
      const family = await trx.selectFrom('oauth_tokens').select('family_id').where('token_hash', '=', tokenHash).executeTakeFirstOrThrow();
      await trx
        .deleteFrom('oauth_tokens')
        .where('family_id', '=', family.family_id)
        .where('kind', '=', 'refresh')
        .where('rotated_at', 'is not', null)
        .where('token_hash', '!=', tokenHash)
        .execute();
      await insertTokens(trx, tokens);
      return true;
    });
  }

  async findOAuthFamily(familyId: string): Promise<{ clientId: string; userId: string } | undefined> {
    const row = await this.db.selectFrom('oauth_tokens').select(['client_id', 'user_id']).where('family_id', '=', familyId).limit(1).executeTakeFirst();
    return row && { clientId: row.client_id, userId: row.user_id };
  }

  revokeOAuthFamily(f: { familyId: string; clientId: string; userId: string }, now: number): Promise<number> {
    return this.dialect.transaction(this.db, async (trx) => {
      const r = await trx.deleteFrom('oauth_tokens').where('family_id', '=', f.familyId).executeTakeFirst();
      await trx.insertInto('oauth_revocations').values({ client_id: f.clientId, user_id: f.userId, family_id: f.familyId, revoked_at: now }).execute();
      return Number(r.numDeletedRows);
    });
  }

  async listOAuthRevocationsSince(since: number): Promise<OAuthRevocation[]> {
    const rows = await this.db.selectFrom('oauth_revocations').selectAll().where('revoked_at', '>=', since).orderBy('revoked_at').execute();
    return rows.map((r) => ({ clientId: r.client_id, userId: r.user_id, familyId: r.family_id, revokedAt: r.revoked_at }));
  }

  deleteExpiredOAuth(now: number, revocationsBefore: number): Promise<number> {
    return this.dialect.transaction(this.db, async (trx) => {
      const codes = await trx.deleteFrom('oauth_codes').where('expires_at', '<=', now).executeTakeFirst();
      const tokens = await trx.deleteFrom('oauth_tokens').where('expires_at', '<=', now).executeTakeFirst();
      const log = await trx.deleteFrom('oauth_revocations').where('revoked_at', '<', revocationsBefore).executeTakeFirst();
      return Number(codes.numDeletedRows + tokens.numDeletedRows + log.numDeletedRows);
    });
  }
}
