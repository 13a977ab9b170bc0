/**
 * The OAuth 2.0 provider's logic, without HTTP: codes (RFC 6749 §4.1, RFC 7636), token issue and
 * refresh rotation, introspection (RFC 7662), revocation (RFC 7009), users' grants, and keeping every
 * cached session in step with revocations made anywhere.
 */
import type { Logger } from 'pino';
import { newId, sha256Hex } from '../core/secrets.js';
import type { Authenticator, Session } from '../core/auth/authenticator.js';
import type { OAuthClientRecord, OAuthTokenRecord, Store, UserRecord } from '../store/store.js';
import type { AuthorizationRequest } from './authorize-request.js';
import { OAuthError } from './oauth-error.js';
import type { Params } from './params.js';
import { SCOPES, formatScope, parseScope, unionScope, type Scope } from './scopes.js';
import { MAX_SECRET_CHARS, PREFIX, isCodeVerifier, newOAuthSecret, newRefreshToken, refreshTokenFamily, verifierMatches } from './secrets.js';

export interface OAuthOptions {
  codeTtlMs: number;
  accessTokenTtlMs: number;
  refreshTokenTtlMs: number;
  /** How often the revocation log is read (revocations by the CLI or another node). */
  revocationPollMs?: number;
  /** How often expired codes and tokens are deleted. */
  sweepIntervalMs?: number;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  scope: string;
}

/** A revocation is read again for this long after it is logged, so one committed late is not missed. */
const POLL_OVERLAP_MS = 2000;
/** Log entries older than this are deleted; every node has read them long before. */
const REVOCATION_LOG_KEEP_MS = 3_600_000;

export class OAuthService {
  #cursor = Date.now();
  #polling = false;
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly d: { store: Store; auth: Authenticator; log: Logger; issuer: () => string },
    private readonly o: OAuthOptions,
  ) {}

  /** Reads the revocation log and sweeps expired rows periodically, until close(). */
  start(): void {
    this.#timers.push(setInterval(() => void this.pollRevocations(), this.o.revocationPollMs ?? 1000).unref());
    this.#timers.push(setInterval(() => void this.sweep(), this.o.sweepIntervalMs ?? 600_000).unref());
    void this.sweep();
  }

  close(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers.length = 0;
  }

  /** The user allowed the request: the grant is remembered (scopes merged) and a single-use code issued. */
  async grantCode(user: UserRecord, r: AuthorizationRequest): Promise<string> {
    const { store } = this.d;
    const now = Date.now();
    const existing = await store.getOAuthGrant(user.id, r.clientId);
    const before = existing ? (parseScope(existing.scope) ?? []) : [];
    await store.saveOAuthGrant({ userId: user.id, clientId: r.clientId, scope: formatScope(unionScope(before, r.scopes)), createdAt: existing?.createdAt ?? now, updatedAt: now });
    const code = newOAuthSecret('code');
    await store.createOAuthCode({
      codeHash: sha256Hex(code),
      clientId: r.clientId,
      userId: user.id,
      redirectUri: r.redirectUri,
      scope: formatScope(r.scopes),
      codeChallenge: r.codeChallenge ?? null,
      familyId: newId('of_'),
      createdAt: now,
      // RFC 6749 §4.1.2: short-lived (a maximum of 10 minutes is recommended).
      expiresAt: now + this.o.codeTtlMs,
      usedAt: null,
    });
    return code;
  }

  /** grant_type=authorization_code (RFC 6749 §4.1.3, RFC 7636 §4.5). */
  async exchangeCode(client: OAuthClientRecord, p: Params): Promise<TokenResponse> {
    const code = required(p, 'code');
    const redirectUri = required(p, 'redirect_uri', 2000);
    const verifier = p.get('code_verifier');
    if (verifier !== undefined && !isCodeVerifier(verifier)) throw new OAuthError('invalid_request', 'code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~');
    const hash = sha256Hex(code);
    const rec = code.startsWith(PREFIX.code) ? await this.d.store.getOAuthCode(hash) : undefined;
    const now = Date.now();
    if (!rec) throw new OAuthError('invalid_grant', 'unknown or expired authorization code');
    if (rec.clientId !== client.id) throw new OAuthError('invalid_grant', 'the authorization code was issued to another client');
    if (rec.usedAt !== null) {
      // RFC 6749 §4.1.2: a code used twice revokes the tokens issued for it.
      await this.#revokeFamily(rec, 'authorization code used again');
      throw new OAuthError('invalid_grant', 'the authorization code was already used; the tokens issued for it are revoked');
    }
    if (rec.expiresAt <= now) throw new OAuthError('invalid_grant', 'the authorization code expired');
    if (rec.redirectUri !== redirectUri) throw new OAuthError('invalid_grant', 'redirect_uri differs from the one in the authorization request');
    if (rec.codeChallenge !== null) {
      if (verifier === undefined) throw new OAuthError('invalid_grant', 'code_verifier is required (the authorization request had a code_challenge)');
      if (!verifierMatches(verifier, rec.codeChallenge)) throw new OAuthError('invalid_grant', 'code_verifier does not match the code_challenge');
    } else if (verifier !== undefined) {
      // RFC 9700 §2.1.1: a verifier without a challenge is a PKCE downgrade attempt.
      throw new OAuthError('invalid_grant', 'code_verifier given but the authorization request had no code_challenge');
    }
    const scopes = parseScope(rec.scope) ?? [];
    const issued = this.#newTokens(rec, scopes, scopes, now);
    if (!(await this.d.store.redeemOAuthCode(hash, now, issued.records))) {
      // Another request redeemed it between our read and now: that is a replay too.
      await this.#revokeFamily(rec, 'authorization code used again');
      throw new OAuthError('invalid_grant', 'the authorization code was already used; the tokens issued for it are revoked');
    }
    return issued.response;
  }

  /** grant_type=refresh_token (RFC 6749 §6), with rotation (RFC 9700 §4.14.2). */
  async refresh(client: OAuthClientRecord, p: Params): Promise<TokenResponse> {
    const token = required(p, 'refresh_token');
    const scopeText = p.get('scope');
    const hash = sha256Hex(token);
    const rec = token.startsWith(PREFIX.refreshToken) ? await this.d.store.getOAuthToken(hash) : undefined;
    const now = Date.now();
    const reused = new OAuthError('invalid_grant', 'the refresh token was already used; every token of this authorization is revoked');
    if (!rec) {
      // Rotated out long ago (or expired), but it names a family that still lives: reuse all the same.
      const familyId = refreshTokenFamily(token);
      const family = familyId ? await this.d.store.findOAuthFamily(familyId) : undefined;
      if (familyId && family?.clientId === client.id) {
        await this.#revokeFamily({ familyId, ...family }, 'refresh token used again');
        throw reused;
      }
    }
    if (!rec || rec.kind !== 'refresh' || rec.expiresAt <= now) throw new OAuthError('invalid_grant', 'unknown, expired or revoked refresh token');
    if (rec.clientId !== client.id) throw new OAuthError('invalid_grant', 'the refresh token was issued to another client');
    if (rec.rotatedAt !== null) {
      await this.#revokeFamily(rec, 'refresh token used again');
      throw reused;
    }
    const granted = parseScope(rec.scope) ?? [];
    let scopes = granted;
    if (scopeText !== undefined) {
      const asked = parseScope(scopeText);
      if (!asked || !asked.every((s) => granted.includes(s))) throw new OAuthError('invalid_scope', `scope may only narrow the granted "${rec.scope}"`);
      scopes = asked;
    }
    // §6: a new refresh token keeps the scope of the one it replaces; the access token may be narrower.
    const issued = this.#newTokens(rec, scopes, granted, now);
    if (!(await this.d.store.rotateOAuthRefreshToken(hash, now, issued.records))) {
      await this.#revokeFamily(rec, 'refresh token used again');
      throw reused;
    }
    return issued.response;
  }

  /** RFC 7662 §2.2. A token of another client is reported inactive, as an unknown one is. */
  async introspect(client: OAuthClientRecord, token: string): Promise<Record<string, unknown>> {
    const rec = await this.#findToken(token);
    const now = Date.now();
    if (!rec || rec.clientId !== client.id || rec.expiresAt <= now || rec.rotatedAt !== null) return { active: false };
    const user = await this.d.store.getUserById(rec.userId);
    if (!user) return { active: false };
    return {
      active: true,
      scope: rec.scope,
      client_id: rec.clientId,
      username: user.email,
      sub: user.id,
      ...(rec.kind === 'access' ? { token_type: 'Bearer' } : {}),
      exp: Math.floor(rec.expiresAt / 1000),
      iat: Math.floor(rec.createdAt / 1000),
      iss: this.d.issuer(),
    };
  }

  /**
   * RFC 7009 §2.1: revokes the token and, since the client is done with that authorization, every
   * other token of its family (§2.1 allows revoking the refresh token with an access token and
   * requires the access tokens to go with a refresh token). Unknown tokens are not an error (§2.2).
   */
  async revoke(client: OAuthClientRecord, token: string): Promise<void> {
    const rec = await this.#findToken(token);
    if (!rec) return;
    if (rec.clientId !== client.id) throw new OAuthError('invalid_grant', 'the token was not issued to this client');
    await this.#revokeFamily(rec);
  }

  /** The integrations a user granted. */
  async grantsOf(user: UserRecord): Promise<Array<Record<string, unknown>>> {
    const grants = await this.d.store.listOAuthGrantsByUser(user.id);
    const out: Array<Record<string, unknown>> = [];
    for (const g of grants) {
      const client = await this.d.store.getOAuthClient(g.clientId);
      const scopes = parseScope(g.scope) ?? [];
      out.push({
        client_id: g.clientId,
        client_name: client?.name ?? null,
        scope: g.scope,
        scopes: scopes.map((s: Scope) => ({ name: s, description: SCOPES[s] })),
        created_at: new Date(g.createdAt).toISOString(),
        updated_at: new Date(g.updatedAt).toISOString(),
      });
    }
    return out;
  }

  /** The user withdraws consent: the grant, its codes and tokens go, and cached sessions at once. */
  async revokeGrant(user: UserRecord, clientId: string): Promise<boolean> {
    const ok = await this.d.store.deleteOAuthGrant(user.id, clientId, Date.now());
    this.d.auth.forgetSessions((s) => s.oauth?.clientId === clientId && s.user.id === user.id);
    return ok;
  }

  /** Evicts cached sessions for every revocation logged since the last poll (from any process). */
  async pollRevocations(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const now = Date.now();
      const log = await this.d.store.listOAuthRevocationsSince(this.#cursor - POLL_OVERLAP_MS);
      this.#cursor = now;
      if (log.length === 0) return;
      const clients = new Set<string>();
      const grants = new Set<string>();
      const families = new Set<string>();
      for (const r of log) {
        if (r.familyId !== null) families.add(r.familyId);
        else if (r.userId !== null) grants.add(`${r.clientId}\n${r.userId}`);
        else clients.add(r.clientId);
      }
      // One pass over the cache for the whole batch.
      this.d.auth.forgetSessions((s: Session) => {
        const o = s.oauth;
        return o !== undefined && (clients.has(o.clientId) || families.has(o.familyId) || grants.has(`${o.clientId}\n${s.user.id}`));
      });
    } catch (err) {
      this.d.log.warn({ err }, 'reading the OAuth revocation log failed');
    } finally {
      this.#polling = false;
    }
  }

  async sweep(): Promise<void> {
    try {
      const now = Date.now();
      const n = await this.d.store.deleteExpiredOAuth(now, now - REVOCATION_LOG_KEEP_MS);
      if (n > 0) this.d.log.debug({ rows: n }, 'expired OAuth codes and tokens deleted');
    } catch (err) {
      this.d.log.warn({ err }, 'deleting expired OAuth codes and tokens failed');
    }
  }

  async #findToken(token: string): Promise<OAuthTokenRecord | undefined> {
    if (token.length > MAX_SECRET_CHARS) return undefined;
    if (!token.startsWith(PREFIX.accessToken) && !token.startsWith(PREFIX.refreshToken)) return undefined;
    return this.d.store.getOAuthToken(sha256Hex(token));
  }

  /** Revokes a token family; with `alarm`, a sign of a stolen code or token, logged for the operator. */
  async #revokeFamily(f: { familyId: string; clientId: string; userId: string }, alarm?: string): Promise<void> {
    if (alarm) this.d.log.warn({ clientId: f.clientId, userId: f.userId, reason: alarm }, 'OAuth authorization revoked: a code or refresh token was used again');
    await this.d.store.revokeOAuthFamily({ familyId: f.familyId, clientId: f.clientId, userId: f.userId }, Date.now());
    this.d.auth.forgetSessions((s) => s.oauth?.familyId === f.familyId);
  }

  #newTokens(from: { familyId: string; clientId: string; userId: string }, accessScopes: Scope[], refreshScopes: Scope[], now: number): { records: OAuthTokenRecord[]; response: TokenResponse } {
    const access = newOAuthSecret('accessToken');
    const refresh = newRefreshToken(from.familyId);
    const base = { familyId: from.familyId, clientId: from.clientId, userId: from.userId, createdAt: now, rotatedAt: null };
    return {
      records: [
        { ...base, tokenHash: sha256Hex(access), kind: 'access', scope: formatScope(accessScopes), expiresAt: now + this.o.accessTokenTtlMs },
        { ...base, tokenHash: sha256Hex(refresh), kind: 'refresh', scope: formatScope(refreshScopes), expiresAt: now + this.o.refreshTokenTtlMs },
      ],
      response: {
        access_token: access,
        token_type: 'Bearer',
        expires_in: Math.floor(this.o.accessTokenTtlMs / 1000),
        refresh_token: refresh,
        scope: formatScope(accessScopes),
      },
    };
  }
}

function required(p: Params, name: string, max = MAX_SECRET_CHARS): string {
  const v = p.get(name);
  if (v === undefined) throw new OAuthError('invalid_request', `${name} is missing`);
  if (v.length > max) throw new OAuthError('invalid_request', `${name} is longer than ${max} characters`);
  return v;
}
