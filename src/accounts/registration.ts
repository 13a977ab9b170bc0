/**
 * Registration from the device (seed "User Registration"): a device's info names its owner's email;
 * when no user has that email yet, the hub records a pending confirmation (the seed's "confirmed" =
 * false) and mails a link to the address. Following the link and choosing a password creates the user,
 * who from then on owns every device that names the email. Until then those devices have no owner and
 * nobody can reach them.
 *
 * Mail is bounded four ways (mail-limits.ts), shared with the claim mails of device-claims.ts.
 *
 * A device naming an address that already has a user joins that account only once the user accepts
 * (issue 12); that flow is in device-claims.ts.
 */
import type { Logger } from 'pino';
import { PasswordHasher } from '../core/password-hasher.js';
import { newId, newToken, sha256Hex } from '../core/secrets.js';
import type { Mailer } from '../mail/mailer.js';
import type { ConfirmationRecord, ConfirmResult, Store } from '../store/store.js';
import type { DeviceClaims } from './device-claims.js';
import { displayName, normalizedEmail } from './email.js';
import { DAY_MS, HOUR_MS, mailHeldBack, type HeldBack, type MailLimits } from './mail-limits.js';

export type { HeldBack } from './mail-limits.js';

export interface RegistrationOptions extends MailLimits {
  confirmationTtlMs: number;
}

export interface RegistrationDeps {
  store: Store;
  mailer: Mailer;
  log: Logger;
  /** Base URL of links in mails (--public-url, else the hub's own HTTP URL). */
  publicUrl: () => string;
  /** ms since the epoch; tests move it instead of sleeping. */
  clock?: () => number;
  /** Claims of devices on existing accounts (issue 12); without it such devices get no mail. */
  claims?: DeviceClaims;
  /** The hub's bound on password hashes (the Authenticator's); its own with the defaults without it. */
  hasher?: PasswordHasher;
}

/** Emails being looked at concurrently; beyond this a connect does not start another look. */
const MAX_IN_FLIGHT = 10_000;
/** Confirmation ids are 43 base64url characters; anything else is unknown without a query. */
const CONFIRMATION_ID = /^[A-Za-z0-9_-]{20,128}$/;

/** What a confirmation link leads to. */
export type LinkState =
  | { status: 'valid'; email: string; expiresAt: number }
  | { status: 'unknown' }
  | { status: 'used' | 'expired' | 'registered'; email: string };


export class Registration {
  readonly #inFlight = new Set<string>();
  readonly #now: () => number;
  readonly #hasher: PasswordHasher;

  constructor(
    private readonly opts: RegistrationOptions,
    private readonly deps: RegistrationDeps,
  ) {
    this.#now = deps.clock ?? Date.now;
    this.#hasher = deps.hasher ?? new PasswordHasher();
  }

  /**
   * A device connected with this info. Never waits and never throws: the look-up and any mail happen
   * in the background, after the tunnel is up.
   */
  deviceConnected(deviceId: string, info: Record<string, unknown>): void {
    if (info['email'] === undefined || info['email'] === null || info['email'] === '') return;
    const email = normalizedEmail(info['email']);
    if (email === undefined) {
      this.deps.log.warn({ deviceId }, 'device reports an email that is not a valid address; no confirmation mail');
      return;
    }
    // One look per email at a time: a device reconnecting in a loop cannot race itself past the limits.
    if (this.#inFlight.has(email) || this.#inFlight.size >= MAX_IN_FLIGHT) return;
    this.#inFlight.add(email);
    this.#consider(deviceId, email, displayName(info['name'], deviceId))
      .catch((err: unknown) => this.deps.log.error({ err, deviceId }, 'registration check failed'))
      .finally(() => this.#inFlight.delete(email));
  }

  async #consider(deviceId: string, email: string, deviceName: string): Promise<void> {
    // An existing account: the device is its owner's already, or claims it (the Store decided as it
    // saved the info), and a claim waits for that user's yes (device-claims.ts).
    if (await this.deps.store.getUserByEmail(email)) return this.deps.claims?.offer(deviceId, email, deviceName);
    const held = await this.#heldBack(email, deviceId, this.#now());
    if (held) {
      this.deps.log.info({ deviceId, email, reason: held }, 'confirmation mail held back');
      return;
    }
    await this.#issue(email, deviceId, deviceName);
  }

  #heldBack(email: string, deviceId: string | null, now: number): Promise<HeldBack | undefined> {
    return mailHeldBack(this.deps.store, this.opts, email, deviceId, now);
  }

  /** Records a new confirmation and queues its mail. */
  async #issue(email: string, deviceId: string | null, deviceName: string): Promise<void> {
    const { store, mailer, log } = this.deps;
    const id = newToken();
    const now = this.#now();
    const expiresAt = now + this.opts.confirmationTtlMs;
    // Recorded before the mail is queued, and kept if delivery fails: it counts towards the limits
    // either way, so a failing address cannot be retried faster than they allow.
    await store.createConfirmation({ idHash: sha256Hex(id), email, deviceId, createdAt: now, expiresAt });
    const base = this.deps.publicUrl().replace(/\/+$/, '');
    const link = `${base}/v1/confirmation?confirmationId=${id}`;
    mailer.send(confirmationMail({ email, deviceName, deviceId, hub: base, link, expiresAt }));
    // With no mail server the link is logged, so whoever runs the hub can pass it on.
    log.info({ deviceId, email, expiresAt: new Date(expiresAt).toISOString(), ...(mailer.kind === 'outbox' ? { link } : {}) }, 'confirmation mail queued');
  }

  /** What the link with this id leads to. */
  async inspect(confirmationId: string): Promise<LinkState> {
    const c = await this.#find(confirmationId);
    if (!c) return { status: 'unknown' };
    if (c.usedAt !== null) return { status: 'used', email: c.email };
    if (c.expiresAt <= this.#now()) return { status: 'expired', email: c.email };
    if (await this.deps.store.getUserByEmail(c.email)) return { status: 'registered', email: c.email };
    return { status: 'valid', email: c.email, expiresAt: c.expiresAt };
  }

  /**
   * Confirms the email of a valid link with the password its owner chose, creating the user. The
   * password is hashed only for a link that is valid, so unknown ids cost no scrypt work, and the hash
   * waits its turn among the hub's others (throws BusyError when it cannot).
   */
  async confirm(confirmationId: string, password: string, clientAddress: string): Promise<ConfirmResult> {
    const state = await this.inspect(confirmationId);
    if (state.status !== 'valid') return state;
    const passwordHash = await this.#hasher.hash(password, clientAddress);
    const r = await this.deps.store.confirmEmail(sha256Hex(confirmationId), { id: newId('u_'), passwordHash }, this.#now());
    if (r.status === 'confirmed') this.deps.log.info({ email: r.user.email, userId: r.user.id }, 'email confirmed; user created');
    return r;
  }

  /**
   * A new link for the email of an expired one (the page of an expired link offers it), under the
   * same limits as a device connecting.
   */
  async resend(confirmationId: string): Promise<{ status: 'sent'; email: string } | { status: 'held'; reason: HeldBack; email: string } | LinkState> {
    const state = await this.inspect(confirmationId);
    if (state.status !== 'expired') return state;
    const c = (await this.#find(confirmationId))!;
    const held = await this.#heldBack(c.email, c.deviceId, this.#now());
    if (held) {
      this.deps.log.info({ deviceId: c.deviceId, email: c.email, reason: held }, 'confirmation mail held back');
      return { status: 'held', reason: held, email: c.email };
    }
    const device = c.deviceId === null ? undefined : await this.deps.store.getDevice(c.deviceId);
    await this.#issue(c.email, c.deviceId, displayName(device?.info?.['name'] ?? device?.name, c.deviceId ?? 'a device'));
    return { status: 'sent', email: c.email };
  }

  /** Forgets confirmations old enough to matter neither as links nor for the daily limits. */
  async sweep(now = this.#now()): Promise<number> {
    return this.deps.store.deleteConfirmationsCreatedBefore(now - Math.max(this.opts.confirmationTtlMs, DAY_MS) - HOUR_MS);
  }

  async #find(confirmationId: string): Promise<ConfirmationRecord | undefined> {
    if (!CONFIRMATION_ID.test(confirmationId)) return undefined;
    const c = await this.deps.store.getConfirmation(sha256Hex(confirmationId));
    return c?.purpose === 'registration' ? c : undefined; // a claim's link is no registration link
  }
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The confirmation mail, as text and as HTML. */
export function confirmationMail(m: { email: string; deviceName: string; deviceId: string | null; hub: string; link: string; expiresAt: number }) {
  const until = new Date(m.expiresAt).toUTCString();
  const device = m.deviceId && m.deviceName !== m.deviceId ? `"${m.deviceName}" (${m.deviceId})` : `"${m.deviceName}"`;
  const text = [
    'Hello,',
    '',
    `the device ${device} names ${m.email} as its owner on the cloudrest hub at ${m.hub}.`,
    '',
    'To confirm this address and choose your password, open:',
    m.link,
    '',
    `The link works once and until ${until}.`,
    'If you did not set up this device, ignore this mail: nothing happens without it.',
    '',
  ].join('\n');
  const html = `<!doctype html><html><body>
<p>Hello,</p>
<p>the device ${escapeHtml(device)} names ${escapeHtml(m.email)} as its owner on the cloudrest hub at ${escapeHtml(m.hub)}.</p>
<p><a href="${escapeHtml(m.link)}">Confirm this address and choose your password</a></p>
<p>The link works once and until ${escapeHtml(until)}. If you did not set up this device, ignore this mail: nothing happens without it.</p>
</body></html>`;
  return { to: m.email, subject: 'Confirm your email for your device', text, html };
}
