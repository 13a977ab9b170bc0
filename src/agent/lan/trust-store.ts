import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import type { RevokedEntry } from '../../relay/protocol/lan-frames.js';
import { MAX_LAN_KEYS } from '../../relay/protocol/lan-frames.js';
import { importPublicKey, type PublicTokenKey } from '../../relay/protocol/signed-token.js';
import { describeError, type Logger } from '../log.js';

/** The file in --state-dir: what LAN access needs when no hub can be reached (after a reboot, say). */
export const TRUST_FILE = 'lan-trust.json';
/** Keys remembered across hubs (a LAN hub and a cloud hub each sign with their own). */
export const MAX_TRUSTED_KEYS = 2 * MAX_LAN_KEYS;
const SAVE_DELAY_MS = 200;

interface Saved {
  version: 1;
  keys: PublicTokenKey[];
  revoked: Array<[string, number]>;
  horizon: number;
  ownerEmail: string | null;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * The hub's token keys, the revoked tokens and the owner email, kept in memory for every LAN request
 * and on disk (written aside and renamed, mode 0600) so a device that restarts with no internet still
 * knows whom to serve. Bounded: at most `maxRevoked` revocations; past that the soonest-expiring are
 * forgotten and `horizon` rises to their expiry, so every token that expires by then is refused: a
 * forgotten revocation never lets its token back in.
 */
export class TrustStore {
  #keys: PublicTokenKey[] = [];
  readonly #imported = new Map<string, KeyObject>();
  readonly #revoked = new Map<string, number>();
  #horizon = 0;
  #ownerEmail: string | null = null;
  #saveTimer: NodeJS.Timeout | undefined;
  #saving: Promise<void> = Promise.resolve();

  private constructor(
    private readonly file: string,
    private readonly maxRevoked: number,
    private readonly log: Logger,
  ) {}

  /** Loads the saved state from `dir` (a missing or unreadable file starts empty, with a warning). */
  static async open(dir: string, maxRevoked: number, log: Logger): Promise<TrustStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const store = new TrustStore(join(dir, TRUST_FILE), maxRevoked, log);
    let text: string | undefined;
    try {
      text = await readFile(store.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('LAN trust state unreadable; starting empty', { file: store.file, err: describeError(err) });
    }
    if (text !== undefined) {
      try {
        store.#load(JSON.parse(text) as Partial<Saved>);
      } catch (err) {
        log.warn('LAN trust state malformed; starting empty', { file: store.file, err: describeError(err) });
      }
    }
    return store;
  }

  get keyCount(): number {
    return this.#keys.length;
  }

  get revokedCount(): number {
    return this.#revoked.size;
  }

  /** Tokens that expire at or before this (ms) are refused: revocations past the bound were forgotten. */
  get horizon(): number {
    return this.#horizon;
  }

  get ownerEmail(): string | null {
    return this.#ownerEmail;
  }

  key(kid: string): KeyObject | undefined {
    return this.#imported.get(kid);
  }

  isRevoked(tokenHash: string): boolean {
    return this.#revoked.has(tokenHash);
  }

  /** Keys from a hub's LAN_KEYS: newest first, the oldest dropped past the bound. */
  addKeys(keys: readonly PublicTokenKey[]): void {
    const fresh = keys.filter((k) => !this.#keys.some((o) => o.kid === k.kid && o.ed25519 === k.ed25519));
    if (fresh.length === 0) return;
    const next = [...fresh, ...this.#keys.filter((o) => !fresh.some((k) => k.kid === o.kid))].slice(0, MAX_TRUSTED_KEYS);
    this.#setKeys(next);
    this.log.info('LAN access: hub token keys stored', { keys: next.map((k) => k.kid) });
    this.#scheduleSave();
  }

  addRevoked(entries: readonly RevokedEntry[], now = Date.now()): void {
    let changed = false;
    for (const e of entries) {
      if (e.expiresAt <= now || e.expiresAt <= this.#horizon || this.#revoked.get(e.tokenHash) === e.expiresAt) continue;
      this.#revoked.set(e.tokenHash, e.expiresAt);
      changed = true;
    }
    if (!changed) return;
    this.#bound(now);
    this.#scheduleSave();
  }

  setOwnerEmail(email: string | null): void {
    const e = email?.trim().toLowerCase() || null;
    if (e === this.#ownerEmail) return;
    this.#ownerEmail = e;
    this.#scheduleSave();
  }

  /** Writes pending changes now (on stop). */
  async flush(): Promise<void> {
    if (this.#saveTimer) {
      clearTimeout(this.#saveTimer);
      this.#saveTimer = undefined;
      this.#saving = this.#saving.then(() => this.#save());
    }
    await this.#saving;
  }

  #bound(now: number): void {
    for (const [h, exp] of this.#revoked) if (exp <= now) this.#revoked.delete(h);
    if (this.#revoked.size <= this.maxRevoked) return;
    const byExpiry = [...this.#revoked].sort((a, b) => a[1] - b[1]);
    const drop = byExpiry.slice(0, byExpiry.length - this.maxRevoked);
    for (const [h] of drop) this.#revoked.delete(h);
    this.#horizon = Math.max(this.#horizon, drop[drop.length - 1]![1]);
    // Entries that expire by the horizon are refused through it; keep only what still adds something.
    for (const [h, exp] of this.#revoked) if (exp <= this.#horizon) this.#revoked.delete(h);
    this.log.warn('LAN access: more revoked tokens than --lan-max-revoked; tokens expiring by the horizon are refused', { horizon: new Date(this.#horizon).toISOString(), kept: this.#revoked.size });
  }

  #setKeys(keys: PublicTokenKey[]): void {
    this.#keys = keys;
    this.#imported.clear();
    for (const k of keys) {
      try {
        this.#imported.set(k.kid, importPublicKey(k));
      } catch (err) {
        this.log.warn('LAN access: a hub token key is unusable', { kid: k.kid, err: describeError(err) });
      }
    }
  }

  #load(o: Partial<Saved>): void {
    if (o.version !== 1) throw new Error(`unknown version ${JSON.stringify(o.version)}`);
    const keys = Array.isArray(o.keys) ? o.keys.filter((k) => typeof k?.kid === 'string' && typeof k.ed25519 === 'string').slice(0, MAX_TRUSTED_KEYS) : [];
    this.#setKeys(keys.map((k) => ({ kid: k.kid, ed25519: k.ed25519 })));
    if (typeof o.horizon === 'number' && Number.isSafeInteger(o.horizon)) this.#horizon = o.horizon;
    if (typeof o.ownerEmail === 'string') this.#ownerEmail = o.ownerEmail;
    const now = Date.now();
    for (const e of Array.isArray(o.revoked) ? o.revoked : []) {
      if (Array.isArray(e) && typeof e[0] === 'string' && SHA256_HEX.test(e[0]) && typeof e[1] === 'number' && e[1] > now) this.#revoked.set(e[0], e[1]);
    }
    this.#bound(now);
  }

  #scheduleSave(): void {
    if (this.#saveTimer) return;
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = undefined;
      this.#saving = this.#saving.then(() => this.#save());
    }, SAVE_DELAY_MS);
    this.#saveTimer.unref();
  }

  async #save(): Promise<void> {
    const saved: Saved = { version: 1, keys: this.#keys, revoked: [...this.#revoked], horizon: this.#horizon, ownerEmail: this.#ownerEmail };
    const tmp = `${this.file}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(saved), { mode: 0o600 });
      await chmod(tmp, 0o600);
      await rename(tmp, this.file);
    } catch (err) {
      this.log.error('LAN access: saving the trust state failed', { file: this.file, err: describeError(err) });
    }
  }
}
