import type { IncomingMessage } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { Bus } from '../bus.js';
import { PasswordHasher } from '../password-hasher.js';
import { hashPassword, newToken, sha256Hex } from '../secrets.js';
import { TOKENS_REVOKED_TOPIC, decodeRevocation, encodeRevocations, type RevokedToken } from '../token-revocation.js';
import { isOAuthAccessToken } from '../../oauth/secrets.js';
import { loadOAuthSession } from '../../oauth/session.js';
import { MAX_SIGNED_TOKEN_CHARS } from '../../relay/protocol/signed-token.js';
import type { DeviceRecord, Store, UserRecord } from '../../store/store.js';
import type { EndedSessions, Session } from './session.js';
import type { TokenSigner } from './token-signer.js';

export interface AuthOptions {
  tokenTtlMs: number;
  rememberTokenTtlMs: number;
  /** How long a token or device lookup is trusted before asking the Store again. */
  cacheTtlMs?: number;
  /** Issues signed tokens that agents can verify offline (LAN access); opaque random tokens without it. */
  signer?: TokenSigner;
  /** Bounds the password hashes of this hub (core/password-hasher.ts); its defaults without it. */
  hasher?: PasswordHasher;
}

export type { EndedSessions, Session } from './session.js';

/** True when the session may do what `scope` covers; a first-party session may do anything. */
export function allows(session: Session, scope: string): boolean {
  return session.scopes === undefined || session.scopes.has(scope);
}

/** A token as GET /v1/auth/tokens lists it: never the token itself. */
export interface TokenListing {
  id: string;
  created: string;
  expires: string;
  lastUsed: string | null;
  current: boolean;
}

/** How tokens are named to their owner: the first 16 hex digits of the stored hash (64 bits; not the token, which cannot be derived from it). */
export function tokenId(tokenHash: string): string {
  return tokenHash.slice(0, 16);
}

/** How often a token's last use is written to the Store at most. */
const TOUCH_INTERVAL_MS = 60_000;

/** Signed tokens (cr1.…) are longer than the opaque 43-character ones. */
const MAX_TOKEN_CHARS = MAX_SIGNED_TOKEN_CHARS;

/** The bearer token of a request: `Authorization: Bearer T`, or `access_token` in the query (for EventSource, which cannot set headers). */
export function bearerToken(req: IncomingMessage, allowQuery: boolean): string | undefined {
  const h = req.headers.authorization;
  if (h) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    return m && m[1]!.length <= MAX_TOKEN_CHARS ? m[1] : undefined;
  }
  if (allowQuery && req.url) {
    const q = req.url.indexOf('?');
    if (q >= 0) {
      const t = new URLSearchParams(req.url.slice(q + 1)).get('access_token');
      if (t && t.length <= MAX_TOKEN_CHARS) return t;
    }
  }
  return undefined;
}

/**
 * Users, tokens and device ownership. Lookups on the request path are cached for a few seconds so a
 * relayed request does not touch the database; every revocation goes through revoke(), which evicts at
 * once here and, through the Bus, on every other node.
 */
export class Authenticator {
  readonly #tokens: LRUCache<string, Session | false>;
  /** Token hash → the cached token, so a revocation (which knows hashes) can evict. Follows #tokens. */
  readonly #cachedByHash = new Map<string, string>();
  readonly #devices: LRUCache<string, DeviceRecord | false>;
  /** Token hashes whose last use was written recently (bounds touchToken to one write a minute each). */
  readonly #touched = new LRUCache<string, true>({ max: 50_000, ttl: TOUCH_INTERVAL_MS });
  /** Bumped by every revocation: a session loaded across one is re-read rather than cached stale. */
  #revocations = 0;
  /** Every password hash for a request goes through it, hub-wide. */
  readonly hasher: PasswordHasher;
  readonly #unsubscribe: (() => void) | undefined;
  /** Told of every revocation, to end the long-lived connections (SSE, MQTT) opened with those tokens. */
  readonly #revokedListeners = new Set<(ended: EndedSessions) => void>();

  constructor(
    private readonly store: Store,
    private readonly opts: AuthOptions,
    private readonly bus?: Bus,
  ) {
    this.hasher = opts.hasher ?? new PasswordHasher();
    const ttl = opts.cacheTtlMs ?? 5000;
    this.#tokens = new LRUCache({
      max: 50_000,
      ttl,
      dispose: (v, token) => {
        if (v && this.#cachedByHash.get(v.tokenHash) === token) this.#cachedByHash.delete(v.tokenHash);
      },
    });
    this.#devices = new LRUCache({ max: 50_000, ttl });
    // Revocations published by any node (this one included: evicting twice is harmless).
    this.#unsubscribe = bus?.subscribe(TOKENS_REVOKED_TOPIC, (_topic, payload) => {
      this.#evict(decodeRevocation(payload).tokens.map((t) => t.tokenHash));
    });
  }

  async login(email: string, password: string, remember: boolean, clientAddress: string): Promise<{ token: string; expiresAt: number; user: UserRecord } | undefined> {
    const user = await this.verifyPassword(email, password, clientAddress);
    if (!user) return undefined;
    return { ...(await this.issueToken(user, remember ? this.opts.rememberTokenTtlMs : this.opts.tokenTtlMs)), user };
  }

  /** A new first-party access token for `user`: signed when the hub signs tokens (LAN access), stored as its hash. */
  async issueToken(user: UserRecord, ttlMs: number): Promise<{ token: string; expiresAt: number }> {
    const now = Date.now();
    const expiresAt = now + ttlMs;
    const token = this.opts.signer ? this.opts.signer.issue(user.id, user.email, expiresAt) : newToken();
    await this.store.createToken({ tokenHash: sha256Hex(token), userId: user.id, createdAt: now, expiresAt });
    return { token, expiresAt };
  }

  /** The session a token belongs to, or undefined when unknown or expired. */
  /** Synchronous when the answer is cached (the relay's hot path), else asks the Store. */
  session(token: string): Session | undefined | Promise<Session | undefined> {
    // Keyed by the token itself (memory only; the Store keeps hashes): no hashing on a cache hit.
    const s = this.#tokens.get(token);
    if (s !== undefined) return s && s.expiresAt > Date.now() ? s : undefined;
    return this.#loadSession(token);
  }

  async #loadSession(token: string, retried = false): Promise<Session | undefined> {
    const revocations = this.#revocations;
    const tokenHash = sha256Hex(token);
    let s: Session | false;
    if (isOAuthAccessToken(token)) {
      s = await loadOAuthSession(this.store, token, tokenHash);
    } else {
      const rec = await this.store.getToken(tokenHash);
      const user = rec ? await this.store.getUserById(rec.userId) : undefined;
      s = rec && user ? { user, expiresAt: rec.expiresAt, tokenHash } : false;
    }
    // A revocation ran meanwhile: what was read may be what it deleted. Read again, once.
    if (revocations !== this.#revocations && !retried) return this.#loadSession(token, true);
    const now = Date.now();
    if (revocations === this.#revocations) {
      this.#tokens.set(token, s);
      if (s) this.#cachedByHash.set(tokenHash, token);
    }
    if (!s || s.expiresAt <= now) return undefined;
    // Last use of a first-party token, written off the request path and at most once a minute per token.
    if (!s.oauth && !this.#touched.has(tokenHash)) {
      this.#touched.set(tokenHash, true);
      this.store.touchToken(tokenHash, now).catch(() => this.#touched.delete(tokenHash));
    }
    return s;
  }

  /**
   * The one way a token dies before its expiry. Deletes the tokens from the Store, evicts them from
   * this node's cache and publishes `auth/tokens/revoked` (payload: core/token-revocation.ts: the
   * user id and each token's SHA-256 and expiry), on which every node evicts them too and which is
   * the feed for agents that verify tokens offline. The tokens must all belong to `userId`.
   */
  async revoke(userId: string, tokens: readonly RevokedToken[]): Promise<void> {
    if (tokens.length === 0) return;
    const hashes = tokens.map((t) => t.tokenHash);
    this.#revocations++;
    await this.store.deleteTokens(hashes);
    // Kept until they expire, so agents that check tokens offline (LAN access) learn of them even
    // when they connect later; recorded before the event goes out, so none is lost with it.
    const now = Date.now();
    const live = tokens.filter((t) => t.expiresAt > now);
    if (live.length > 0) await this.store.addRevokedTokens(live.map((t) => ({ tokenHash: t.tokenHash, userId, expiresAt: t.expiresAt, revokedAt: now })));
    this.#evict(hashes);
    if (this.bus) for (const event of encodeRevocations({ userId, tokens: tokens.map((t) => ({ tokenHash: t.tokenHash, expiresAt: t.expiresAt })) })) this.bus.publish(TOKENS_REVOKED_TOPIC, event);
  }

  /** The user if the password is theirs (same timing for unknown emails); issues no token. */
  /** Evicts the cached sessions that `match` picks (OAuth revocations); returns how many. */
  forgetSessions(match: (s: Session) => boolean): number {
    this.#revocations++;
    const gone: string[] = [];
    this.#tokens.forEach((s, token) => {
      if (s && match(s)) gone.push(token);
    });
    for (const token of gone) this.#tokens.delete(token);
    this.#tell({ match });
    return gone.length;
  }

  /**
   * False when `token` no longer has a session; for a long-lived connection that held its session
   * with onRevoked after awaiting other things, so a revocation meanwhile is not missed. A failing
   * Store answers true: the token was valid a moment ago, and the next revocation still ends it.
   */
  async stillValid(token: string): Promise<boolean> {
    try {
      return (await this.session(token)) !== undefined;
    } catch {
      return true;
    }
  }

  /**
   * Calls `listener` on every revocation this node learns of: its own, other nodes' (through the Bus)
   * and OAuth ones (forgetSessions). It must be quick: it runs on the revocation path. Returns the
   * unsubscribe function.
   */
  onRevoked(listener: (ended: EndedSessions) => void): () => void {
    this.#revokedListeners.add(listener);
    return () => this.#revokedListeners.delete(listener);
  }

  #tell(ended: EndedSessions): void {
    for (const l of this.#revokedListeners) l(ended);
  }

  /** Revokes the presenting token (POST /v1/auth/logout). */
  async logout(token: string): Promise<void> {
    const tokenHash = sha256Hex(token);
    const rec = await this.store.getToken(tokenHash);
    if (rec) await this.revoke(rec.userId, [rec]);
    else this.#evict([tokenHash]);
  }

  /** The user's live tokens, newest first; `current` marks the one of this session. */
  async listTokens(session: Session): Promise<TokenListing[]> {
    const iso = (ms: number) => new Date(ms).toISOString();
    const tokens = await this.store.listTokensByUser(session.user.id, Date.now());
    return tokens.map((t) => ({
      id: tokenId(t.tokenHash),
      created: iso(t.createdAt),
      expires: iso(t.expiresAt),
      lastUsed: t.lastUsedAt === null ? null : iso(t.lastUsedAt),
      current: t.tokenHash === session.tokenHash,
    }));
  }

  /** Revokes one of the user's tokens by its listed id; false when the user has no such live token. */
  async revokeById(user: UserRecord, id: string): Promise<boolean> {
    const tokens = await this.store.listTokensByUser(user.id, Date.now());
    const doomed = tokens.filter((t) => tokenId(t.tokenHash) === id);
    await this.revoke(user.id, doomed);
    return doomed.length > 0;
  }

  /**
   * The user if the password is theirs, read from the Store (not the session cache); issues no token.
   * Unknown emails are checked against a dummy hash, so timing does not reveal which emails exist.
   * The hash waits its turn in `hasher` (the client address's); throws BusyError when it cannot.
   */
  async verifyPassword(email: string, password: string, clientAddress: string): Promise<UserRecord | undefined> {
    const user = await this.store.getUserByEmail(email);
    const ok = await this.hasher.verify(password, user?.passwordHash ?? (await dummyHash()), clientAddress);
    return user && ok ? user : undefined;
  }

  /**
   * Sets a new password (the caller has checked the current one) and revokes every token of the user
   * but `keepTokenHash`, so whoever held another session is signed out.
   */
  async changePassword(user: UserRecord, password: string, keepTokenHash: string, clientAddress: string): Promise<void> {
    await this.store.setUserPassword(user.id, await this.hasher.hash(password, clientAddress));
    const tokens = await this.store.listTokensByUser(user.id, Date.now());
    await this.revoke(user.id, tokens.filter((t) => t.tokenHash !== keepTokenHash));
  }

  #evict(tokenHashes: readonly string[]): void {
    this.#revocations++;
    for (const h of tokenHashes) {
      const token = this.#cachedByHash.get(h);
      if (token !== undefined) this.#tokens.delete(token);
      this.#cachedByHash.delete(h);
    }
    this.#tell({ tokenHashes });
  }

  /** Stops listening for revocations on the Bus. */
  close(): void {
    this.#unsubscribe?.();
  }

  /** The device if `user` owns it (its reported email is theirs); synchronous when cached. */
  ownedDevice(user: UserRecord, deviceId: string): DeviceRecord | undefined | Promise<DeviceRecord | undefined> {
    const d = this.#devices.get(deviceId);
    if (d !== undefined) return owned(d, user);
    return this.store.getDevice(deviceId).then((rec) => {
      this.#devices.set(deviceId, rec ?? false);
      return owned(rec ?? false, user);
    });
  }

  /** Every device the user owns. */
  devicesOf(user: UserRecord): Promise<DeviceRecord[]> {
    return this.store.listDevicesByEmail(user.email);
  }

  /** Forget cached facts about a device (its info, hence owner, may have changed). */
  forgetDevice(deviceId: string): void {
    this.#devices.delete(deviceId);
  }
}

function owned(d: DeviceRecord | false, user: UserRecord): DeviceRecord | undefined {
  return d && d.email !== null && d.email === user.email.toLowerCase() ? d : undefined;
}

let dummy: Promise<string> | undefined;
function dummyHash(): Promise<string> {
  dummy ??= hashPassword('not a real password');
  return dummy;
}
