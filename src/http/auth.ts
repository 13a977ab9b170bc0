import type { IncomingMessage } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { Bus } from '../core/bus.js';
import { hashPassword, newToken, sha256Hex, verifyPassword } from '../core/secrets.js';
import { TOKENS_REVOKED_TOPIC, encodeTokensRevoked } from '../core/token-events.js';
import { MAX_SIGNED_TOKEN_CHARS } from '../relay/protocol/signed-token.js';
import type { DeviceRecord, Store, UserRecord } from '../store/store.js';
import type { TokenSigner } from './token-signer.js';

export interface AuthOptions {
  tokenTtlMs: number;
  rememberTokenTtlMs: number;
  /** How long a token or device lookup is trusted before asking the Store again. */
  cacheTtlMs?: number;
  /** Issues signed tokens that agents can verify offline (LAN access); opaque random tokens without it. */
  signer?: TokenSigner;
  /** Where revocations are announced (bus topic auth/tokens/revoked), for agents' LAN revocation lists. */
  bus?: Bus;
}

export interface Session {
  user: UserRecord;
  expiresAt: number;
}

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
 * relayed request does not touch the database; a logout or password change evicts at once.
 */
export class Authenticator {
  readonly #tokens: LRUCache<string, Session | false>;
  readonly #devices: LRUCache<string, DeviceRecord | false>;

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
    const now = Date.now();
    const expiresAt = now + (remember ? this.opts.rememberTokenTtlMs : this.opts.tokenTtlMs);
    const token = this.opts.signer ? this.opts.signer.issue(user.id, user.email, expiresAt) : newToken();
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
    const rec = await this.store.getToken(sha256Hex(token));
    const user = rec ? await this.store.getUserById(rec.userId) : undefined;
    const s = rec && user ? { user, expiresAt: rec.expiresAt } : false;
    this.#tokens.set(token, s);
    return s && s.expiresAt > Date.now() ? s : undefined;
  }

  async logout(token: string): Promise<void> {
    this.#tokens.delete(token);
    const tokenHash = sha256Hex(token);
    const rec = await this.store.getToken(tokenHash);
    await this.store.deleteToken(tokenHash);
    if (rec) this.#publishTokensRevoked(rec.userId, [{ tokenHash, expiresAt: rec.expiresAt }]);
  }

  /**
   * Announces tokens revoked before their expiry on the bus (`auth/tokens/revoked`); the LAN trust
   * sync (src/relay/edge/lan-trust.ts) records them and tells the owner's agents to refuse them.
   */
  #publishTokensRevoked(userId: string, tokens: Array<{ tokenHash: string; expiresAt: number }>): void {
    const live = tokens.filter((t) => t.expiresAt > Date.now());
    if (live.length > 0) this.opts.bus?.publish(TOKENS_REVOKED_TOPIC, encodeTokensRevoked({ userId, tokens: live }));
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
