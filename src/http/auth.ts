import type { IncomingMessage } from 'node:http';
import { LRUCache } from 'lru-cache';
import { hashPassword, newToken, sha256Hex, verifyPassword } from '../core/secrets.js';
import { isOAuthAccessToken } from '../oauth/secrets.js';
import { loadOAuthSession } from '../oauth/session.js';
import type { DeviceRecord, Store, UserRecord } from '../store/store.js';

export interface AuthOptions {
  tokenTtlMs: number;
  rememberTokenTtlMs: number;
  /** How long a token or device lookup is trusted before asking the Store again. */
  cacheTtlMs?: number;
}

export interface Session {
  user: UserRecord;
  expiresAt: number;
  /** What an OAuth access token may do (src/oauth/scopes.ts); undefined for a first-party token: everything. */
  scopes?: ReadonlySet<string>;
  /** For an OAuth access token: its client and token family, so a revocation can find it in the cache. */
  oauth?: { clientId: string; familyId: string };
}

/** True when the session may do what `scope` covers; a first-party session may do anything. */
export function allows(session: Session, scope: string): boolean {
  return session.scopes === undefined || session.scopes.has(scope);
}

const MAX_TOKEN_CHARS = 256;

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
 * relayed request does not touch the database; a logout or password change evicts at once.
 */
export class Authenticator {
  readonly #tokens: LRUCache<string, Session | false>;
  readonly #devices: LRUCache<string, DeviceRecord | false>;
  /** Bumped by forgetSessions(), so a session read across an eviction is not cached stale. */
  #evictions = 0;

  constructor(
    private readonly store: Store,
    private readonly opts: AuthOptions,
  ) {
    const ttl = opts.cacheTtlMs ?? 5000;
    this.#tokens = new LRUCache({ max: 50_000, ttl });
    this.#devices = new LRUCache({ max: 50_000, ttl });
  }

  async login(email: string, password: string, remember: boolean): Promise<{ token: string; expiresAt: number; user: UserRecord } | undefined> {
    const user = await this.store.getUserByEmail(email);
    // Verify against a dummy hash for unknown users too, so timing does not reveal which emails exist.
    const ok = await verifyPassword(password, user?.passwordHash ?? (await dummyHash()));
    if (!user || !ok) return undefined;
    const token = newToken();
    const now = Date.now();
    const expiresAt = now + (remember ? this.opts.rememberTokenTtlMs : this.opts.tokenTtlMs);
    await this.store.createToken({ tokenHash: sha256Hex(token), userId: user.id, createdAt: now, expiresAt });
    return { token, expiresAt, user };
  }

  /** The session a token belongs to, or undefined when unknown or expired. */
  /** Synchronous when the answer is cached (the relay's hot path), else asks the Store. */
  session(token: string): Session | undefined | Promise<Session | undefined> {
    // Keyed by the token itself (memory only; the Store keeps hashes): no hashing on a cache hit.
    const s = this.#tokens.get(token);
    if (s !== undefined) return s && s.expiresAt > Date.now() ? s : undefined;
    return this.#loadSession(token);
  }

  async #loadSession(token: string): Promise<Session | undefined> {
    const evictions = this.#evictions;
    let s: Session | false;
    if (isOAuthAccessToken(token)) {
      s = await loadOAuthSession(this.store, token);
    } else {
      const rec = await this.store.getToken(sha256Hex(token));
      const user = rec ? await this.store.getUserById(rec.userId) : undefined;
      s = rec && user ? { user, expiresAt: rec.expiresAt } : false;
    }
    // An eviction ran while we read: what we read may be what it revoked, so it is not cached.
    if (evictions === this.#evictions) this.#tokens.set(token, s);
    return s && s.expiresAt > Date.now() ? s : undefined;
  }

  /** The user if the password is theirs (same timing for unknown emails); issues no token. */
  async verifyPassword(email: string, password: string): Promise<UserRecord | undefined> {
    const user = await this.store.getUserByEmail(email);
    const ok = await verifyPassword(password, user?.passwordHash ?? (await dummyHash()));
    return user && ok ? user : undefined;
  }

  /** Evicts the cached sessions that `match` picks (OAuth revocations); returns how many. */
  forgetSessions(match: (s: Session) => boolean): number {
    this.#evictions++;
    const gone: string[] = [];
    this.#tokens.forEach((s, token) => {
      if (s && match(s)) gone.push(token);
    });
    for (const token of gone) this.#tokens.delete(token);
    return gone.length;
  }

  async logout(token: string): Promise<void> {
    this.#tokens.delete(token);
    await this.store.deleteToken(sha256Hex(token));
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
